"""What the Vespa backend puts on the wire and how it classifies Vespa's answers (stand-in)."""

from __future__ import annotations

import time

import pytest

from search.backends.base import IndexError_, IndexWrite, WriteOutcome
from search.backends.vespa import VespaBackend
from tests.search.contract import DOC, content, stock
from tests.search.fake_vespa import FakeVespaServer, Rule


@pytest.fixture
def vespa(fake_vespa):
    fake_vespa.app.reset()
    backend = VespaBackend("vespa", {"URL": fake_vespa.url, "DEADLINE": 2, "REQUEST_TIMEOUT": 1})
    yield backend
    backend.close()


def writes_sent(fake_vespa):
    return [e for e in fake_vespa.app.requests() if e["operation"] in ("update", "remove")]


def test_conditions_are_null_safe_and_only_content_creates(vespa, fake_vespa):
    vespa.write([content(3), stock(2, 5), IndexWrite(DOC, "shopify", 4, delete=True)])
    update_content, update_stock, remove = writes_sent(fake_vespa)
    assert update_content["params"]["condition"] == "product.vv_shopify == null or product.vv_shopify < 3"
    assert update_content["params"]["create"] == "true"
    assert update_stock["params"]["condition"] == "product.vv_inventory == null or product.vv_inventory < 2"
    assert "create" not in update_stock["params"] and "create" not in remove["params"]
    assert {e["http_version"] for e in fake_vespa.app.requests()} == {"2"}  # h2c, prior knowledge


def test_a_missing_document_is_told_from_a_stale_write_by_a_read(vespa, fake_vespa):
    assert [r.outcome for r in vespa.write([stock(1, 5)])] == [WriteOutcome.MISSING]
    vespa.write([content(2)])
    assert [r.outcome for r in vespa.write([content(2), content(1)])] == [WriteOutcome.STALE] * 2
    statuses = [(e["operation"], e["status"]) for e in fake_vespa.app.requests()]
    assert statuses[:2] == [("update", 412), ("get", 404)]


def test_overload_is_retried_with_backoff(vespa, fake_vespa):
    fake_vespa.app.add_faults(Rule(status=429, operation="update", count=2), Rule(status=503, count=1))
    assert [r.outcome for r in vespa.write([content(1)])] == [WriteOutcome.APPLIED]
    assert [e["status"] for e in writes_sent(fake_vespa)] == [429, 429, 503, 200]


def test_endless_429_ends_at_our_deadline_as_retryable(vespa, fake_vespa):
    fake_vespa.app.add_faults(Rule(status=429, count=None))
    started = time.monotonic()
    result = vespa.write([content(1), stock(1, 3)])
    assert time.monotonic() - started < 4  # DEADLINE 2 s; pyvespa's own policy never stops
    assert [r.outcome for r in result] == [WriteOutcome.RETRYABLE] * 2
    assert "429" in result[0].error


@pytest.mark.parametrize("status", [400, 413])
def test_refusals_are_permanent_and_not_retried(vespa, fake_vespa, status):
    fake_vespa.app.add_faults(Rule(status=status, count=None))
    result = vespa.write([content(1)])
    assert result[0].outcome == WriteOutcome.PERMANENT and str(status) in result[0].error
    assert len(writes_sent(fake_vespa)) == 1


def test_an_invalid_field_value_is_permanent(vespa):
    result = vespa.write([IndexWrite(DOC, "shopify", 1, {"shopify_id": "not a number"}, create=True)])
    assert result[0].outcome == WriteOutcome.PERMANENT and "shopify_id" in result[0].error


def test_feed_block_stops_the_call(vespa, fake_vespa):
    fake_vespa.app.knobs.feed_block = True
    result = vespa.write([content(1), stock(1, 2), content(2)])
    assert [r.outcome for r in result] == [WriteOutcome.BLOCKED] * 3
    assert len(writes_sent(fake_vespa)) == 1  # the rest of the document's writes were not sent
    with pytest.raises(IndexError_) as raised:
        vespa.ping()
    assert raised.value.blocked
    fake_vespa.app.knobs.feed_block = False
    vespa.ping()


@pytest.mark.parametrize("status", [500, 504])
def test_unknown_outcome_is_retryable_and_safe_to_replay(vespa, fake_vespa, status):
    fake_vespa.app.add_faults(Rule(apply_then_fail=status, operation="update"))
    first = vespa.write([content(1)])
    assert first[0].outcome == WriteOutcome.RETRYABLE and "outcome unknown" in first[0].error
    assert len(writes_sent(fake_vespa)) == 1  # not replayed blindly
    # Vespa had applied it: the replay is refused by the condition, which confirms it.
    assert vespa.write([content(1)])[0].outcome == WriteOutcome.STALE
    assert vespa.get(DOC)["vv_shopify"] == 1


def test_a_slow_answer_is_retryable_not_a_hang(vespa, fake_vespa):
    # A node that hangs past the timeout we asked for: our own request timeout (1 s) ends the wait.
    fake_vespa.app.add_faults(Rule(latency_ms=1500, operation="update", count=1, honor_timeout=False))
    started = time.monotonic()
    assert vespa.write([content(1)])[0].outcome in (WriteOutcome.RETRYABLE, WriteOutcome.APPLIED)
    assert time.monotonic() - started < 3.5
    deadline = time.monotonic() + 5
    while fake_vespa.app.inflight and time.monotonic() < deadline:  # the hung request ends late
        time.sleep(0.05)
    assert 504 not in [e["status"] for e in writes_sent(fake_vespa)]


def test_vespa_timing_out_after_applying_is_unknown_then_confirmed_by_the_replay(vespa, fake_vespa):
    # Slower than the timeout we send (0.8 s): Vespa answers 504, having applied the write.
    fake_vespa.app.add_faults(Rule(latency_ms=1500, operation="update", count=1))
    [result] = vespa.write([content(1)])
    assert result.outcome == WriteOutcome.RETRYABLE and "outcome unknown" in result.error
    assert [e["status"] for e in writes_sent(fake_vespa)] == [504]
    assert vespa.write([content(1)])[0].outcome == WriteOutcome.STALE  # it had been applied


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_connection_dropped_mid_answer_is_retried_to_a_certain_outcome(vespa, fake_vespa, when):
    fake_vespa.app.add_faults(Rule(drop_connection=when, operation="update", count=1))
    [result] = vespa.write([content(1)])
    # Before: the retry applies it. After: the retry's condition fails, and the read says the
    # document already holds this version: confirmed either way, never written twice.
    assert result.outcome == (WriteOutcome.APPLIED if when == "before" else WriteOutcome.STALE)
    assert vespa.get(DOC)["vv_shopify"] == 1
    assert writes_sent(fake_vespa)[0]["note"] == "connection dropped"


def test_a_re_sent_message_changes_nothing_for_conditional_assigns(vespa, fake_vespa):
    fake_vespa.app.add_faults(Rule(duplicate_apply=True, operation="update", count=None))
    assert [r.outcome for r in vespa.write([content(1), stock(1, 7)])] == [WriteOutcome.APPLIED] * 2
    document = vespa.get(DOC)
    assert (document["vv_shopify"], document["vv_inventory"], document["inventory_total"]) == (1, 1, 7)


def test_writes_to_one_document_wait_for_each_other(vespa, fake_vespa):
    # The content write is slow; had the stock write been sent meanwhile it would find no
    # document (MISSING) and the stock would be lost.
    fake_vespa.app.add_faults(Rule(latency_ms=200, operation="update", count=1))
    assert [r.outcome for r in vespa.write([content(1), stock(1, 7)])] == [WriteOutcome.APPLIED] * 2
    assert vespa.get(DOC)["inventory_total"] == 7


def test_in_flight_requests_are_bounded(fake_vespa):
    fake_vespa.app.reset()
    deadline = time.monotonic() + 5
    while fake_vespa.app.inflight and time.monotonic() < deadline:  # an earlier test's slow request
        time.sleep(0.05)
    fake_vespa.app.knobs.max_inflight = 4  # the stand-in answers 429 beyond 4 concurrent writes
    fake_vespa.app.add_faults(Rule(latency_ms=20, operation="update", count=None))
    writes = [IndexWrite(str(n), "shopify", 1, {"title": f"Wax {n}"}, create=True) for n in range(40)]
    backend = VespaBackend("vespa", {"URL": fake_vespa.url, "CONCURRENCY": 4, "DEADLINE": 20})
    try:
        assert {r.outcome for r in backend.write(writes)} == {WriteOutcome.APPLIED}
        assert {e["status"] for e in writes_sent(fake_vespa)} == {200}
        # With more in flight than Vespa takes, the 429s are retried until every write applies.
        fake_vespa.app.clear_faults()
        fake_vespa.app.add_faults(Rule(latency_ms=20, operation="update", count=None))
        greedy = VespaBackend("vespa", {"URL": fake_vespa.url, "CONCURRENCY": 16, "DEADLINE": 20})
        later = [IndexWrite(w.doc_id, "shopify", 2, {"title": "Wax"}, create=True) for w in writes]
        assert {r.outcome for r in greedy.write(later)} == {WriteOutcome.APPLIED}
        assert 429 in {e["status"] for e in writes_sent(fake_vespa)}
        greedy.close()
    finally:
        backend.close()


def test_writes_queued_past_the_deadline_are_not_sent_and_reported_one_by_one(fake_vespa):
    fake_vespa.app.reset()
    fake_vespa.app.add_faults(Rule(latency_ms=300, operation="update", count=None))
    writes = [IndexWrite(str(n), "shopify", 1, {"title": f"Wax {n}"}, create=True) for n in range(20)]
    backend = VespaBackend(
        "vespa", {"URL": fake_vespa.url, "CONCURRENCY": 2, "DEADLINE": 1, "REQUEST_TIMEOUT": 2}
    )
    try:
        started = time.monotonic()
        results = backend.write(writes)  # 10 rounds of 0.3 s would take 3 s: the deadline is 1 s
        elapsed = time.monotonic() - started
    finally:
        backend.close()
    assert elapsed < 1 + 2  # deadline + one request's timeout, never the whole queue
    outcomes = [r.outcome for r in results]
    assert WriteOutcome.APPLIED in outcomes and WriteOutcome.RETRYABLE in outcomes
    assert set(outcomes) == {WriteOutcome.APPLIED, WriteOutcome.RETRYABLE}
    late = [r for r in results if r.outcome == WriteOutcome.RETRYABLE]
    assert all("deadline" in r.error for r in late)
    assert len(writes_sent(fake_vespa)) == outcomes.count(WriteOutcome.APPLIED) < len(writes)


def test_settings_select_the_vespa_backend(settings, fake_vespa):
    from search.backends import get_backend, reset_backends

    settings.SEARCH_BACKENDS = {**settings.SEARCH_BACKENDS, "vespa": vespa_settings(fake_vespa.url)}
    settings.SEARCH_BACKEND = "vespa"
    reset_backends()
    backend = get_backend()
    assert isinstance(backend, VespaBackend) and backend.url == fake_vespa.url


def vespa_settings(url: str) -> dict:
    return {"BACKEND": "search.backends.vespa.VespaBackend", "URL": url, "NAMESPACE": "shopsync"}


@pytest.mark.parametrize("compress", ["true", "false"])
def test_embeddings_arrive_whole_with_or_without_gzip(fake_vespa, compress):
    fake_vespa.app.reset()
    vector = [((n % 7) - 3) / 4 for n in range(384)]  # float32-exact
    backend = VespaBackend("vespa", {"URL": fake_vespa.url, "COMPRESS": compress})
    try:
        backend.write(
            [content(1), IndexWrite(DOC, "embedding", 1, {"embedding": vector, "embedding_model": "m"})]
        )
        assert backend.get(DOC)["embedding"] == vector
    finally:
        backend.close()
    with pytest.raises(ValueError, match="COMPRESS"):
        VespaBackend("vespa", {"URL": fake_vespa.url, "COMPRESS": "maybe"})


def test_the_stand_in_speaks_http11_and_gzip_too(fake_vespa):
    """pyvespa's sync client (HTTP/1.1 on http://, gzip over 1 KB) gets the same answers."""
    from vespa.application import Vespa

    fake_vespa.app.reset()
    app = Vespa(url="http://127.0.0.1", port=fake_vespa.port)
    fields = {"title": "Ski Wax", "description": "wax " * 400, "vv_shopify": 1}
    with app.syncio() as sync:
        assert sync.feed_data_point("product", DOC, fields, namespace="shopsync").status_code == 200
        assert sync.get_data("product", DOC, namespace="shopsync").json["fields"]["vv_shopify"] == 1
        assert sync.get_data("product", "nope", namespace="shopsync").status_code == 404
    assert {e["http_version"] for e in fake_vespa.app.requests()} == {"1.1"}


def test_the_stand_in_refuses_a_method_document_v1_does_not_have(fake_vespa):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", fake_vespa.port, timeout=5)
    try:
        conn.request("PATCH", f"/document/v1/shopsync/product/docid/{DOC}", body=b"{}")
        response = conn.getresponse()
        assert response.status == 405 and b"PATCH" in response.read()
    finally:
        conn.close()


def test_connection_recycling_costs_a_timeout_not_an_error():
    """Vespa Cloud closes connections (HTTP/2 GOAWAY); pyvespa's httpr client then waits out
    its timeout on the next request before reconnecting. Reads retry once; writes retry."""
    server = FakeVespaServer(max_requests=5).start()
    backend = VespaBackend("vespa", {"URL": server.url, "REQUEST_TIMEOUT": 0.5, "DEADLINE": 5})
    try:
        for version in range(1, 5):
            assert backend.write([content(version)])[0].outcome == WriteOutcome.APPLIED
            assert backend.get(DOC)["vv_shopify"] == version
            assert [h.id for h in backend.search("wax")] == [DOC]
    finally:
        backend.close()
        server.stop()
