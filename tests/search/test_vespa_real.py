"""Opt-in: the backend contract against a real Vespa (set VESPA_URL; skipped otherwise).

Point it at a disposable Vespa with search/vespa_app deployed (`vespa deploy search/vespa_app`):
each test clears the `shopsync_contract_test` namespace, and count() sees every namespace.
"""

from __future__ import annotations

import os

import pytest

from search.backends.vespa import VespaBackend
from tests.search.contract import BackendContract

VESPA_URL = os.environ.get("VESPA_URL", "")

pytestmark = pytest.mark.skipif(
    not VESPA_URL,
    reason="no real Vespa here: set VESPA_URL (e.g. http://localhost:8080, with search/vespa_app deployed) "
    "to run the contract against it",
)


class TestRealVespaContract(BackendContract):
    @pytest.fixture
    def backend(self):
        backend = VespaBackend(
            "vespa",
            {
                "URL": VESPA_URL,
                "NAMESPACE": "shopsync_contract_test",
                "CERT": os.environ.get("VESPA_CERT_PATH", ""),
                "KEY": os.environ.get("VESPA_KEY_PATH", ""),
                "TOKEN": os.environ.get("VESPA_TOKEN", ""),
            },
        )
        backend.clear()
        yield backend
        backend.clear()
        backend.close()
