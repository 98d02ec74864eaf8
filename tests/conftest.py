"""Shared test setup: test secrets, a fresh embedded index per test, and webhook helpers."""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client

from scoring.scorers.llm import reset_breakers
from search import queue as derived_queue
from search.backends import get_backend, reset_backends
from search.embeddings import set_encoder
from sync import queue
from sync.security import sign
from sync.services import shop_cache_clear
from tests.helpers import shared_fixture

SECRET = "test-secret-current"
PREVIOUS_SECRET = "test-secret-previous"


@pytest.fixture(autouse=True)
def _isolated(settings, tmp_path):
    settings.SHOPIFY_WEBHOOK_SECRETS = [SECRET, PREVIOUS_SECRET]
    settings.SEARCH_BACKENDS = {
        "embedded": {
            "BACKEND": "search.backends.embedded.EmbeddedBackend",
            "PATH": str(tmp_path / "index.sqlite3"),
        }
    }
    settings.SEARCH_BACKEND = "embedded"
    # Tests never reach a real LLM, whatever the environment says (the `llm` fixture sets a stand-in).
    settings.LLM_BASE_URL = settings.LLM_API_KEY = settings.LLM_MODEL = ""
    settings.SCORING_SCORER = "local"
    # A small deterministic encoder; tests of the real model ask for the `real_encoder` fixture.
    settings.EMBEDDING_ENCODER = "search.embeddings.HashingEncoder"
    set_encoder(None)
    derived_queue.reset_debounce()
    reset_breakers()
    reset_backends()
    shop_cache_clear()
    queue.reset_debounce()
    yield
    reset_backends()
    shop_cache_clear()


@pytest.fixture
def index():
    return get_backend()


@pytest.fixture(scope="session")
def fake_vespa():
    """The Vespa stand-in (tests/search/fake_vespa) on a free loopback port, for the session;
    tests reset its documents, faults and log with `fake_vespa.app.reset()`."""
    from tests.search.fake_vespa import FakeVespaServer

    server = FakeVespaServer().start()
    yield server
    server.stop()


def webhook_body(name: str) -> bytes:
    """Raw bytes of a real delivery body from shared/fixtures/webhooks."""
    return shared_fixture(f"webhooks/{name}").read_bytes()


def webhook_headers(name: str) -> dict[str, str]:
    return json.loads(shared_fixture(f"webhooks/{name}").read_text())


def post_webhook(
    client: Client,
    body: bytes,
    *,
    topic: str = "products/update",
    shop: str = "feeder8.myshopify.com",
    webhook_id: str | None = None,
    secret: str = SECRET,
    signature: str | None = None,
    extra: dict[str, str] | None = None,
):
    """POST a delivery the way Shopify does: raw body, signed, X-Shopify-* headers."""
    headers = {
        "HTTP_X_SHOPIFY_TOPIC": topic,
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": shop,
        "HTTP_X_SHOPIFY_WEBHOOK_ID": webhook_id or str(uuid.uuid4()),
        "HTTP_X_SHOPIFY_API_VERSION": "2024-01",
        "HTTP_X_SHOPIFY_HMAC_SHA256": signature if signature is not None else sign(body, secret),
    }
    headers.update(extra or {})
    return client.generic("POST", "/webhooks/shopify", body, content_type="application/json", **headers)


class IndexFaults:
    """Make the index answer writes with an error outcome (None: behave normally)."""

    def __init__(self) -> None:
        self.outcome = None
        self.error = ""
        self.results: list = []  # every WriteResult the index returned

    def fail(self, outcome, error: str) -> None:
        self.outcome, self.error = outcome, error

    def heal(self) -> None:
        self.outcome = None


@pytest.fixture
def index_faults(monkeypatch) -> IndexFaults:
    from search.backends.base import WriteResult
    from search.backends.embedded import EmbeddedBackend

    faults = IndexFaults()
    original = EmbeddedBackend.write

    def write(self, writes):
        if faults.outcome is not None:
            results = [WriteResult(w, faults.outcome, faults.error) for w in writes]
        else:
            results = original(self, writes)
        faults.results.extend(results)
        return results

    original_ping = EmbeddedBackend.ping

    def ping(self):
        if faults.outcome in ("retryable", "blocked"):
            from search.backends.base import IndexError_

            raise IndexError_(faults.error, retryable=True)
        original_ping(self)

    monkeypatch.setattr(EmbeddedBackend, "write", write)
    monkeypatch.setattr(EmbeddedBackend, "ping", ping)
    return faults
