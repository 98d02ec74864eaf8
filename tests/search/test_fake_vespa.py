"""The stand-in's own protocol behaviour beyond the decision table (reference/vespa.md §6): the
timeout parameter, dry runs, traces, tombstones, seeding, the hits cap and rule matching. Raw
HTTP/1.1 here; the backend's side of these faults is in test_vespa_backend.py."""

from __future__ import annotations

import http.client
import json
import time

import pytest

from tests.search.fake_vespa import Rule

PATH = "/document/v1/shopsync/product/docid/"


@pytest.fixture
def stand_in(fake_vespa):
    fake_vespa.app.reset()
    return fake_vespa


def call(stand_in, method: str, target: str, body: dict | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", stand_in.port, timeout=10)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, target, body=data, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def update(title: str) -> dict:
    return {"fields": {"title": {"assign": title}}}


def test_a_timeout_shorter_than_the_latency_is_a_504_and_the_write_happened_anyway(stand_in):
    stand_in.app.add_faults(Rule(latency_ms=400, operation="update"))
    started = time.monotonic()
    status, body = call(stand_in, "PUT", f"{PATH}a?create=true&timeout=100ms", update("Wax"))
    assert status == 504 and body["message"] == "Request timeout after 100ms"
    assert time.monotonic() - started < 0.35  # answered at the timeout, not after the latency
    assert stand_in.app.user_docs()["a"]["title"] == "Wax"
    stand_in.app.add_faults(Rule(latency_ms=400, operation="update", apply_on_timeout=False))
    assert call(stand_in, "PUT", f"{PATH}a?timeout=0.1", update("Other"))[0] == 504
    assert stand_in.app.user_docs()["a"]["title"] == "Wax"


def test_dry_run_decides_without_applying_and_traces_are_answered(stand_in):
    status, body = call(stand_in, "PUT", f"{PATH}a?create=true&dryRun=true&tracelevel=3", update("Wax"))
    assert (status, body["trace"]) == (200, [])
    assert stand_in.app.user_docs() == {}
    assert call(stand_in, "PUT", f"{PATH}a?dryRun=true", {"fields": {"nope": {"assign": 1}}})[0] == 400
    first = stand_in.app.requests()[0]
    assert (first["dryRun"], first["tracelevel"], first["applied"]) == ("true", "3", False)


def test_removed_documents_leave_tombstones_and_can_be_re_created(stand_in):
    assert call(stand_in, "PUT", f"{PATH}a?create=true", update("Wax"))[0] == 200
    assert call(stand_in, "DELETE", f"{PATH}a")[0] == 200
    assert "id:shopsync:product::a" in stand_in.app.tombstones
    assert call(stand_in, "PUT", f"{PATH}a?create=true", update("Wax again"))[0] == 200
    assert stand_in.app.requests()[-1]["note"] == "re-created after a remove"


def test_documents_are_seeded_through_the_control_plane(stand_in):
    seeded = {"a": {"title": "Ski Wax", "vv_shopify": 3}, "b": {"title": "Board"}}
    assert call(stand_in, "PUT", "/_fake/docs", seeded) == (200, {"documents": 2})
    assert call(stand_in, "GET", f"{PATH}a")[1]["fields"]["vv_shopify"] == 3
    assert call(stand_in, "PUT", "/_fake/docs", {"c": {"nope": 1}})[0] == 400
    assert stand_in.app.requests("put") == []  # seeding is not traffic


def test_more_hits_than_the_query_profile_allows_is_a_400(stand_in):
    status, body = call(
        stand_in, "POST", "/search/", {"yql": "select * from product where true", "hits": 401}
    )
    assert status == 400 and "401 hits requested" in body["root"]["errors"][0]["message"]


def test_rules_match_by_path_and_parameter_and_latency_can_vary(stand_in):
    stand_in.app.add_faults(
        Rule(status=503, path=r"/docid/b$", count=None), Rule(status=429, param="condition", count=None)
    )
    assert call(stand_in, "PUT", f"{PATH}a?create=true", update("Wax"))[0] == 200
    assert call(stand_in, "PUT", f"{PATH}b?create=true", update("Board"))[0] == 503
    assert call(stand_in, "PUT", f"{PATH}a?condition=true", update("Wax 2"))[0] == 429
    stand_in.app.clear_faults()
    stand_in.app.add_faults(Rule(latency_ms=[50, 120], operation="get", count=None))
    started = time.monotonic()
    for _ in range(3):
        assert call(stand_in, "GET", f"{PATH}a")[0] == 200
    assert 0.15 <= time.monotonic() - started < 1.0
    with pytest.raises(ValueError, match="drop_connection"):
        Rule(drop_connection="sometimes")


def test_a_dropped_connection_breaks_the_answer_off(stand_in):
    stand_in.app.add_faults(Rule(drop_connection="after", operation="update"))
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        call(stand_in, "PUT", f"{PATH}a?create=true", update("Wax"))
    assert stand_in.app.user_docs()["a"]["title"] == "Wax"  # "after": it was applied first
    assert stand_in.app.requests()[-1]["note"] == "connection dropped"


def test_duplicate_apply_applies_a_non_idempotent_update_twice(stand_in):
    call(stand_in, "PUT", f"{PATH}a?create=true", {"fields": {"inventory_total": {"assign": 10}}})
    stand_in.app.add_faults(Rule(duplicate_apply=True, operation="update"))
    call(stand_in, "PUT", f"{PATH}a", {"fields": {"inventory_total": {"increment": 5}}})
    assert stand_in.app.user_docs()["a"]["inventory_total"] == 20
