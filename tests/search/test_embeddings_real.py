"""The real all-MiniLM-L6-v2 (loaded once per session): vectors that carry meaning, over the real
84-product catalog."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command

from search.api import search_products
from search.embeddings import products_embed_pending
from tests.helpers import shared_fixture

pytestmark = pytest.mark.django_db
CATALOG = "catalog/products_export__hair-extensions-store_2025__84-products.csv"
SHOP = "hair-extensions-demo.myshopify.com"


@pytest.fixture
def embedded_catalog(real_encoder):
    call_command("backfill", "--from-file", str(shared_fixture(CATALOG)), "--shop", SHOP, verbosity=0)
    stats = products_embed_pending()
    assert stats.products == 84
    return real_encoder


def test_real_model_vectors_are_unit_length_and_meaningful(real_encoder):
    vectors = real_encoder.encode(
        ["curly wig", "kinky curly wig", "stainless steel kitchen knife"], batch_size=8
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert real_encoder.name == "sentence-transformers/all-MiniLM-L6-v2@bf16"


def test_curly_wig_semantic_query_finds_wigs_in_the_real_catalog(embedded_catalog):
    hits = search_products("curly wig", shop=SHOP, mode="semantic", limit=5)
    titles = [h.document["title"] for h in hits]
    assert len(hits) == 5
    # Every one is a wig (by its title or its type: a "unit" is a wig too), the first a curly one.
    assert all("wig" in f"{h.document['title']} {h.document['product_type']}".lower() for h in hits), titles
    assert "curly" in titles[0].lower(), titles


def test_semantic_search_finds_meaning_without_the_words(embedded_catalog):
    # No product says "hairpiece"; the model knows wigs and extensions are.
    hits = search_products("hairpiece", shop=SHOP, mode="bm25", limit=5)
    assert hits == []
    hits = search_products("hairpiece", shop=SHOP, mode="semantic", limit=5)
    kinds = " ".join(f"{h.document['title']} {h.document['product_type']}".lower() for h in hits)
    assert len(hits) == 5 and ("wig" in kinds or "extension" in kinds or "hair" in kinds)


def test_hybrid_keeps_text_matches_on_top_for_a_precise_query(embedded_catalog):
    bm25 = search_products("brazilian body wave", shop=SHOP, mode="bm25", limit=3)
    hybrid = search_products("brazilian body wave", shop=SHOP, mode="hybrid", limit=3, trend_boost=0.0)
    assert bm25 and hybrid
    assert "body wave" in hybrid[0].document["title"].lower()
