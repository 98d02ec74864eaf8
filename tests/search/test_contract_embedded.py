"""The backend contract on the embedded index."""

from __future__ import annotations

import pytest

from search.backends.embedded import EmbeddedBackend
from tests.search.contract import BackendContract
from tests.search.contract_ranking import RankingContract


class TestEmbeddedContract(BackendContract, RankingContract):
    @pytest.fixture
    def backend(self, tmp_path):
        backend = EmbeddedBackend("embedded", {"PATH": str(tmp_path / "contract.sqlite3")})
        yield backend
        backend.close()
