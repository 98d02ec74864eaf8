"""The backend contract on the Vespa backend, against the protocol-faithful stand-in."""

from __future__ import annotations

import pytest

from search.backends.vespa import VespaBackend
from tests.search.contract import BackendContract
from tests.search.contract_ranking import RankingContract


@pytest.fixture
def vespa_backend(fake_vespa):
    fake_vespa.app.reset()
    backend = VespaBackend("vespa", {"URL": fake_vespa.url, "DEADLINE": 10, "REQUEST_TIMEOUT": 5})
    yield backend
    backend.close()


class TestVespaContract(BackendContract, RankingContract):
    @pytest.fixture
    def backend(self, vespa_backend):
        return vespa_backend
