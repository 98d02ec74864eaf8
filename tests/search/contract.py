"""The index backend contract, as tests any backend must pass (DESIGN §5).

A backend's test module subclasses `BackendContract` and provides a `backend` fixture; the
embedded backend runs it in test_contract_embedded.py, the Vespa backend will run the same class.
"""

from __future__ import annotations

from search.backends.base import IndexWrite, WriteOutcome

DOC = "42"
BIG_ID = 788032119674292922


def content(version: int, **fields) -> IndexWrite:
    base = {
        "shop": "a.myshopify.com",
        "shopify_id": BIG_ID,
        "title": "Ski Wax",
        "status": "active",
        "description": "fast wax",
        "vendor": "feeder8",
        "product_type": "",
        "tags": ["ski"],
    }
    return IndexWrite(DOC, "shopify", version, {**base, **fields}, create=True)


def stock(version: int, total: int) -> IndexWrite:
    return IndexWrite(DOC, "inventory", version, {"inventory_total": total})


class BackendContract:
    def test_create_then_same_version_is_stale(self, backend):
        assert [r.outcome for r in backend.write([content(1), content(1, title="Other")])] == [
            WriteOutcome.APPLIED,
            WriteOutcome.STALE,
        ]
        doc = backend.get(DOC)
        assert (doc["title"], doc["vv_shopify"], doc["shopify_id"]) == ("Ski Wax", 1, BIG_ID)

    def test_partial_write_never_creates_a_document(self, backend):
        assert [r.outcome for r in backend.write([stock(1, 5)])] == [WriteOutcome.MISSING]
        assert backend.get(DOC) is None and backend.count() == 0

    def test_writers_of_different_groups_do_not_clobber_each_other(self, backend):
        backend.write([content(1), stock(1, 5)])
        backend.write([content(2, title="Ski Wax Pro")])
        backend.write([stock(2, 3)])
        doc = backend.get(DOC)
        assert (doc["title"], doc["inventory_total"]) == ("Ski Wax Pro", 3)
        assert (doc["vv_shopify"], doc["vv_inventory"]) == (2, 2)

    def test_an_older_snapshot_cannot_roll_the_document_back(self, backend):
        backend.write([content(5, title="Live webhook title")])
        result = backend.write([content(3, title="Backfill snapshot title")])
        assert result[0].outcome == WriteOutcome.STALE
        assert backend.get(DOC)["title"] == "Live webhook title"
        assert [h.document["title"] for h in backend.search("webhook")] == ["Live webhook title"]
        assert backend.search("snapshot") == []

    def test_delete_is_conditional_on_the_content_version(self, backend):
        backend.write([content(2)])
        assert backend.write([IndexWrite(DOC, "shopify", 2, delete=True)])[0].outcome == WriteOutcome.STALE
        assert backend.get(DOC) is not None
        assert backend.write([IndexWrite(DOC, "shopify", 3, delete=True)])[0].outcome == WriteOutcome.APPLIED
        assert backend.get(DOC) is None and backend.search("wax") == []

    def test_writes_to_one_document_apply_in_order(self, backend):
        results = backend.write([content(1), stock(1, 9), content(2, title="Renamed Wax"), stock(2, 4)])
        assert [r.outcome for r in results] == [WriteOutcome.APPLIED] * 4
        doc = backend.get(DOC)
        assert (doc["title"], doc["inventory_total"]) == ("Renamed Wax", 4)

    def test_status_field_hides_drafts_after_a_partial_write(self, backend):
        backend.write([content(1)])
        assert len(backend.search("wax")) == 1
        backend.write([content(2, status="draft")])
        assert backend.search("wax") == []
