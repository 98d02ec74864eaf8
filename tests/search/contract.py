"""The index backend contract, as tests any backend must pass (DESIGN §5).

A backend's test module subclasses `BackendContract` and provides a `backend` fixture; the
embedded backend runs it in test_contract_embedded.py, the Vespa backend runs the same class in
test_contract_vespa.py against the stand-in (and against a real Vespa when VESPA_URL is set).
"""

from __future__ import annotations

import inspect

import pytest

from search.backends.base import IndexWrite, WriteOutcome
from search.fields import EMBEDDING_DIMENSIONS

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

    def test_a_document_without_version_components_takes_any_version(self, backend):
        # Null-safe conditions: a document put whole (reconcile's repair of an old index) has no
        # vv_<writer> yet; the first versioned write of each group must apply, not fail.
        backend.put({"id": DOC, "shop": "a.myshopify.com", "title": "Old Wax", "status": "active"})
        assert backend.write([content(1), stock(1, 2)])[0].outcome == WriteOutcome.APPLIED
        doc = backend.get(DOC)
        assert (doc["title"], doc["inventory_total"], doc["vv_shopify"]) == ("Ski Wax", 2, 1)

    def test_update_and_delete_outside_the_pipeline(self, backend):
        assert backend.update(DOC, {"inventory_total": 3}) is False
        assert backend.get(DOC) is None and backend.count() == 0
        backend.put({"id": DOC, "shop": "a.myshopify.com", "title": "Ski Wax", "status": "active"})
        assert backend.update(DOC, {"inventory_total": 3}) is True
        assert (backend.get(DOC)["title"], backend.get(DOC)["inventory_total"]) == ("Ski Wax", 3)
        assert backend.delete(DOC) is True
        assert backend.delete(DOC) is False
        assert backend.get(DOC) is None

    def test_documents_count_and_clear_per_shop(self, backend):
        writes = [
            IndexWrite(
                str(n), "shopify", 1, {"shop": shop, "title": f"Wax {n}", "status": "active"}, create=True
            )
            for n, shop in enumerate(["a.myshopify.com"] * 3 + ["b.myshopify.com"] * 2)
        ]
        assert {r.outcome for r in backend.write(writes)} == {WriteOutcome.APPLIED}
        assert sorted(d["id"] for d in backend.documents(shop="a.myshopify.com")) == ["0", "1", "2"]
        assert [d["title"] for d in backend.documents(shop="b.myshopify.com") if d["id"] == "4"] == ["Wax 4"]
        assert (backend.count(), backend.count(shop="b.myshopify.com")) == (5, 2)
        assert [h.id for h in backend.search("wax", shop="b.myshopify.com", limit=5)] in (
            ["3", "4"],
            ["4", "3"],
        )
        backend.clear()
        assert backend.count() == 0 and list(backend.documents(shop="a.myshopify.com")) == []

    def test_embedding_and_trend_groups_never_create_and_keep_content(self, backend):
        vector = unit(0, 1)
        derived = [
            IndexWrite(DOC, "embedding", 1, {"embedding": vector, "embedding_model": "minilm@1"}),
            IndexWrite(DOC, "scoring", 1, {"trend_score": 0.75}),
        ]
        assert [r.outcome for r in backend.write(derived)] == [WriteOutcome.MISSING] * 2
        backend.write([content(1), *derived])
        backend.write([content(2, title="Ski Wax Pro")])
        doc = backend.get(DOC)
        assert (doc["title"], doc["embedding_model"], doc["trend_score"]) == ("Ski Wax Pro", "minilm@1", 0.75)
        assert doc["embedding"] == vector  # exactly representable in float32
        assert (doc["vv_embedding"], doc["vv_scoring"]) == (1, 1)

    def test_trend_boost_reorders_bm25_results(self, backend):
        requires_mode(backend, "trend_boost")
        backend.write(catalog())
        plain = [h.id for h in backend.search("wax", limit=4)]
        boosted = [h.id for h in backend.search("wax", limit=4, trend_boost=100.0)]
        # B holds "wax" only in its description, the weakest match, but has the highest trend.
        assert sorted(plain) == ["A", "B", "C", "E"] and plain[-1] == "B" and boosted[0] == "B"

    def test_semantic_search_returns_nearest_searchable_documents(self, backend):
        requires_mode(backend, "semantic")
        backend.write(catalog())
        hits = backend.search("", mode="semantic", query_vector=unit(1, 0.2), limit=10)
        # B is nearest, then A; C is further; D is a draft; E has no embedding.
        assert [h.id for h in hits] == ["B", "A", "C"]
        assert hits[0].score > hits[1].score > hits[2].score
        assert [h.id for h in backend.search("", mode="semantic", query_vector=unit(1), limit=1)] == ["B"]
        shop_b = backend.search("", mode="semantic", query_vector=unit(1), shop="b.myshopify.com")
        assert [h.id for h in shop_b] == ["C"]

    def test_hybrid_blends_text_and_vector_by_semantic_weight(self, backend):
        requires_mode(backend, "hybrid")
        backend.write(catalog())
        text_only = backend.search("wax", mode="hybrid", query_vector=unit(1, 0.2), semantic_weight=0.0)
        vector_only = backend.search("wax", mode="hybrid", query_vector=unit(1, 0.2), semantic_weight=1.0)
        # Weight 0: the BM25 order of the text matches (E, without an embedding, is one of them);
        # weight 1: the nearest first. D, a draft, never comes back.
        assert [h.id for h in text_only] == [h.id for h in backend.search("wax")]
        assert vector_only[0].id == "B" and "D" not in {h.id for h in vector_only}
        near_a = unit(0, 0.5)
        assert backend.search("wax", mode="hybrid", query_vector=near_a)[0].id == "A"
        assert backend.search("wax", mode="hybrid", query_vector=near_a, trend_boost=5.0)[0].id == "B"


def unit(axis: int, other: float = 0.0) -> list[float]:
    """A 384-dim vector along `axis`, tilted by `other` toward the next axis (float32-exact)."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    vector[axis] = 1.0
    vector[axis + 1] = other
    return vector


def catalog() -> list[IndexWrite]:
    """Five documents matching "wax" (B only in its description); D is a draft, E has no
    embedding, B has the highest trend score of the searchable ones."""
    rows = {
        "A": ("a.myshopify.com", "Ski Wax", "for skis", "active", unit(0, 0.5), 0.1),
        "B": ("a.myshopify.com", "Glide Paste", "a wax paste", "active", unit(1, 0.1), 0.9),
        "C": ("b.myshopify.com", "Racing Wax Kit", "wax and scraper", "active", unit(2), 0.2),
        "D": ("a.myshopify.com", "Draft Wax", "wax", "draft", unit(1, 0.2), 1.0),
        "E": ("a.myshopify.com", "Board Wax", "hot wax", "active", None, 0.0),
    }
    writes = []
    for doc_id, (shop, title, description, status, vector, trend) in rows.items():
        fields = {"shop": shop, "title": title, "description": description, "status": status}
        writes.append(IndexWrite(doc_id, "shopify", 1, fields, create=True))
        if vector is not None:
            writes.append(IndexWrite(doc_id, "embedding", 1, {"embedding": vector, "embedding_model": "m"}))
        writes.append(IndexWrite(doc_id, "scoring", 1, {"trend_score": trend}))
    return writes


def requires_mode(backend, mode: str) -> None:
    """Skip where the backend does not have the search mode yet (a gap with a reason)."""
    if "trend_boost" not in inspect.signature(backend.search).parameters:
        pytest.skip(f"{type(backend).__name__} has no {mode} search on this branch (issue 4 adds it)")
