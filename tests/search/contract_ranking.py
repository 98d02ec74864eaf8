"""The search-mode part of the backend contract (BaseBackend.search): semantic, hybrid and the
trend boost, with hand-made vectors so the expected order and scores follow from the formula.

A backend's contract module mixes `RankingContract` in beside `BackendContract`.
"""

from __future__ import annotations

import math

import pytest

from search.backends.base import IndexWrite, WriteOutcome
from search.fields import EMBEDDING_DIMENSIONS

SHOP = "a.myshopify.com"


def unit(*weights: float) -> list[float]:
    """A unit vector with `weights` on the first axes."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for i, weight in enumerate(weights):
        vector[i] = weight
    norm = math.sqrt(sum(w * w for w in vector))
    return [w / norm for w in vector]


def seed(backend, docs: dict[str, tuple[str, list[float] | None, float | None]], shop: str = SHOP) -> None:
    """docs: id -> (title, vector, trend score)."""
    writes = []
    for doc_id, (title, vector, trend) in docs.items():
        fields = {"shop": shop, "title": title, "status": "active", "description": "", "tags": []}
        writes.append(IndexWrite(doc_id, "shopify", 1, fields, create=True))
        if vector is not None:
            writes.append(IndexWrite(doc_id, "embedding", 1, {"embedding": vector, "embedding_model": "m"}))
        if trend is not None:
            writes.append(IndexWrite(doc_id, "scoring", 1, {"trend_score": trend}))
    assert all(r.outcome == WriteOutcome.APPLIED for r in backend.write(writes))


class RankingContract:
    def test_embedding_and_score_writes_never_create_a_document(self, backend):
        writes = [
            IndexWrite("9", "embedding", 1, {"embedding": unit(1), "embedding_model": "m"}),
            IndexWrite("9", "scoring", 1, {"trend_score": 0.5}),
        ]
        assert [r.outcome for r in backend.write(writes)] == [WriteOutcome.MISSING] * 2
        assert backend.get("9") is None

    def test_the_embedding_round_trips_and_an_older_one_is_refused(self, backend):
        seed(backend, {"1": ("Curly Wig", unit(1, 1), None)})
        older = IndexWrite("1", "embedding", 1, {"embedding": unit(0, 1), "embedding_model": "old"})
        assert backend.write([older])[0].outcome == WriteOutcome.STALE
        doc = backend.get("1")
        assert doc["embedding_model"] == "m" and doc["vv_embedding"] == 1
        assert doc["embedding"] == pytest.approx(unit(1, 1), abs=1e-6)

    def test_semantic_returns_nearest_by_cosine_and_skips_documents_without_a_vector(self, backend):
        seed(
            backend,
            {
                "1": ("far", unit(0, 1), None),
                "2": ("near", unit(1, 0.1), None),
                "3": ("middle", unit(1, 1), None),
                "4": ("no vector", None, None),
            },
        )
        hits = backend.search("", mode="semantic", query_vector=unit(1), limit=10)
        assert [h.id for h in hits] == ["2", "3", "1"]
        assert hits[0].score == pytest.approx(1 / math.sqrt(1.01), abs=1e-5)
        assert hits[2].score == pytest.approx(0.0, abs=1e-6)

    def test_semantic_respects_shop_and_status(self, backend):
        seed(backend, {"1": ("a", unit(1), None)})
        seed(backend, {"2": ("b", unit(1), None)}, shop="b.myshopify.com")
        backend.write([IndexWrite("1", "shopify", 2, {"status": "draft"})])
        assert [h.id for h in backend.search("", mode="semantic", query_vector=unit(1))] == ["2"]
        assert backend.search("", mode="semantic", query_vector=unit(1), shop=SHOP) == []

    def test_hybrid_follows_the_formula(self, backend):
        # "wig" matches 1 and 2 by text; the vector is nearest 3, then 2, then 1.
        seed(
            backend,
            {
                "1": ("wig wig", unit(0, 1), 0.0),
                "2": ("wig hat", unit(1, 1), 1.0),
                "3": ("bonnet", unit(1, 0), 0.5),
            },
        )
        bm25 = {h.id: h.score for h in backend.search("wig", mode="bm25")}
        cosine = {h.id: h.score for h in backend.search("", mode="semantic", query_vector=unit(1))}
        w, boost = 0.4, 0.3
        hits = backend.search(
            "wig", mode="hybrid", query_vector=unit(1), semantic_weight=w, trend_boost=boost
        )

        def scaled(scores, doc_id):
            if doc_id not in scores:
                return 0.0
            low, high = min(scores.values()), max(scores.values())
            return 1.0 if high == low else (scores[doc_id] - low) / (high - low)

        trend = {"1": 0.0, "2": 1.0, "3": 0.5}
        expected = {
            d: (1 - w) * scaled(bm25, d) + w * scaled(cosine, d) + boost * trend[d] for d in ("1", "2", "3")
        }
        assert {h.id: h.score for h in hits} == pytest.approx(expected, abs=1e-6)
        assert [h.id for h in hits] == sorted(expected, key=lambda d: -expected[d])

    def test_trend_boost_lifts_a_trending_product_in_semantic_mode(self, backend):
        seed(backend, {"1": ("a", unit(1, 0.2), 0.0), "2": ("b", unit(1, 0.3), 1.0)})
        plain = backend.search("", mode="semantic", query_vector=unit(1))
        boosted = backend.search("", mode="semantic", query_vector=unit(1), trend_boost=0.5)
        assert [h.id for h in plain] == ["1", "2"]
        assert [h.id for h in boosted] == ["2", "1"]
        assert boosted[0].score == pytest.approx(plain[1].score + 0.5, abs=1e-6)

    def test_a_malformed_embedding_is_a_permanent_failure(self, backend):
        seed(backend, {"1": ("a", None, None)})
        bad = IndexWrite("1", "embedding", 1, {"embedding": [0.1, 0.2], "embedding_model": "m"})
        assert backend.write([bad])[0].outcome == WriteOutcome.PERMANENT

    def test_delete_removes_the_vector_from_semantic_search(self, backend):
        seed(backend, {"1": ("a", unit(1), None)})
        backend.write([IndexWrite("1", "shopify", 2, delete=True)])
        assert backend.search("", mode="semantic", query_vector=unit(1)) == []
