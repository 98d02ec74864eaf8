"""The embedding writer: only changed texts are embedded, identical texts once, vectors reach the
index as partial writes, and the web process never imports the model (fake encoder here; the real
model is in test_embeddings_real.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from django.core.management import call_command
from django_q.models import OrmQ

from catalog.models import Product
from search.api import search_products
from search.backends import get_backend
from search.embeddings import HashingEncoder, pending_embeddings, products_embed_pending, set_encoder
from sync.pipeline import drain
from tests.conftest import post_webhook, webhook_body
from tests.helpers import ROOT, shared_fixture

pytestmark = pytest.mark.django_db
FEEDER8 = "products_update__feeder8_2024-01__raw_body.json"
CATALOG = "catalog/products_export__hair-extensions-store_2025__84-products.csv"
SHOP = "hair-extensions-demo.myshopify.com"


@pytest.fixture
def encoder():
    encoder = HashingEncoder()
    set_encoder(encoder)
    return encoder


def _backfill() -> None:
    call_command("backfill", "--from-file", str(shared_fixture(CATALOG)), "--shop", SHOP, verbosity=0)


def _feeder8(client, webhook_id: str, **changes) -> None:
    body = {**json.loads(webhook_body(FEEDER8)), **changes}
    post_webhook(client, json.dumps(body).encode(), webhook_id=webhook_id)
    drain()


def test_catalog_is_embedded_once_and_searchable_by_meaning(encoder):
    _backfill()
    live = Product.objects.live().count()
    stats = products_embed_pending(encoder=encoder)
    assert stats.products == live == 84
    texts = {p.embed_text_hash for p in Product.objects.live()}
    assert stats.encoded == len(texts)  # identical texts embedded once
    assert sum(encoder.calls) == len(texts)
    index = get_backend()
    doc = index.get(str(Product.objects.live().first().pk))
    assert len(doc["embedding"]) == 384 and doc["embedding_model"] == "hashing-384"
    hits = search_products("curly wig", shop=SHOP, mode="semantic", limit=5)
    assert len(hits) == 5 and all("embedding" not in h.document or h.document["embedding"] for h in hits)
    assert products_embed_pending(encoder=encoder).products == 0  # nothing left to do


def test_inventory_only_and_no_op_updates_embed_nothing(client, encoder):
    _feeder8(client, "a")
    assert products_embed_pending(encoder=encoder).products == 1
    calls = list(encoder.calls)
    _feeder8(client, "b")  # the same payload again: no-op
    body = json.loads(webhook_body(FEEDER8))
    for variant in body["variants"]:
        variant["inventory_quantity"] = 3
    post_webhook(
        client, json.dumps({**body, "updated_at": "2024-05-07T09:00:00+07:00"}).encode(), webhook_id="c"
    )
    drain()
    assert not pending_embeddings(encoder.name).exists()
    assert products_embed_pending(encoder=encoder).products == 0 and encoder.calls == calls


def test_a_text_change_re_embeds_only_that_product_and_writes_the_index(client, encoder):
    _feeder8(client, "a")
    products_embed_pending(encoder=encoder)
    product = Product.objects.get()
    before = get_backend().get(str(product.pk))
    _feeder8(client, "b", title="Racing Ski Wax", updated_at="2024-05-07T09:00:00+07:00")
    stats = products_embed_pending(encoder=encoder)
    assert (stats.products, stats.encoded) == (1, 1)
    after = get_backend().get(str(product.pk))
    assert after["vv_embedding"] == before["vv_embedding"] + 1
    assert after["embedding"] != before["embedding"] and after["title"] == "Racing Ski Wax"
    product.refresh_from_db()
    assert product.index_vector["embedding"] == product.version_vector["embedding"]


def test_a_new_model_re_embeds_everything_in_the_background(client, encoder):
    _feeder8(client, "a")
    products_embed_pending(encoder=encoder)

    class Other(HashingEncoder):
        name = "hashing-384-v2"

    other = Other()
    assert pending_embeddings(other.name).count() == 1
    assert products_embed_pending(encoder=other).products == 1
    assert get_backend().get(str(Product.objects.get().pk))["embedding_model"] == "hashing-384-v2"


def test_a_content_change_wakes_the_embedding_worker(client, django_capture_on_commit_callbacks):
    post_webhook(client, webhook_body(FEEDER8), webhook_id="a")
    with django_capture_on_commit_callbacks(execute=True):
        drain()
    tasks = [OrmQ.objects.get(pk=q.pk).func() for q in OrmQ.objects.all()]
    assert "search.tasks.embed_pending" in tasks and "scoring.tasks.rescore_requested" in tasks


def test_embed_task_uses_the_configured_encoder(client):
    from search.tasks import embed_pending

    _feeder8(client, "a")
    assert embed_pending().startswith("embedded 1 (1 encoded")
    assert embed_pending().startswith("embedded 0 ")


def test_identical_texts_are_encoded_once(client, encoder):
    body = json.loads(webhook_body(FEEDER8))
    for copy, product_id in enumerate((9079211262490, 9079211262491)):
        twin = {**body, "id": product_id, "handle": f"ski-wax-{copy}"}
        twin["variants"] = [
            {
                **v,
                "id": v["id"] + copy,
                "product_id": product_id,
                "inventory_item_id": v["inventory_item_id"] + copy,
            }
            for v in body["variants"]
        ]
        post_webhook(client, json.dumps(twin).encode(), webhook_id=f"twin-{copy}")
    drain()
    assert Product.objects.live().count() == 2
    stats = products_embed_pending(encoder=encoder)
    assert (stats.products, stats.encoded) == (2, 1) and sum(encoder.calls) == 1
    first, second = (get_backend().get(str(p.pk)) for p in Product.objects.order_by("pk"))
    assert first["embedding"] == second["embedding"]


class UnloadableEncoder(HashingEncoder):
    """Stands for the real model: loading it is what an idle sweep must not do."""

    def __init__(self, **_: object) -> None:
        raise AssertionError("the model was loaded")


def test_an_idle_sweep_does_not_load_the_model(client, settings):
    from search.tasks import embed_pending

    _feeder8(client, "a")
    assert embed_pending().startswith("embedded 1 ")  # the configured hashing encoder
    settings.EMBEDDING_ENCODER = f"{__name__}.UnloadableEncoder"
    set_encoder(None)
    assert embed_pending().startswith("embedded 0 ")  # nothing pending: nothing loaded
    _feeder8(client, "b", title="Racing Ski Wax", updated_at="2024-05-07T09:00:00+07:00")
    with pytest.raises(AssertionError, match="the model was loaded"):
        embed_pending()  # now there is work, and the model is needed


def test_hybrid_search_with_a_query_vector_from_the_api_is_logged(encoder):
    from scoring.models import SearchQuery

    _backfill()
    products_embed_pending(encoder=encoder)
    hits = search_products("curly wig", shop=SHOP, mode="hybrid", limit=5)
    assert len(hits) == 5
    logged = SearchQuery.objects.get()
    assert (logged.query, logged.mode, logged.results) == ("curly wig", "hybrid", [h.id for h in hits])


def test_the_web_process_never_imports_sentence_transformers():
    code = (
        "import sys, django; django.setup();"
        "import config.urls, config.wsgi, search.api, sync.views, sync.pipeline, scoring.services;"
        "from django.test import Client;"
        "Client().get('/healthz');"
        "bad = [m for m in ('sentence_transformers', 'torch', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {"DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": "x", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_reconcile_sees_no_drift_once_vectors_and_scores_are_written_and_repairs_a_lost_vector(encoder):
    from catalog.models import Shop
    from scoring.services import products_rescore
    from sync.reconcile import reconcile_shop

    _backfill()
    products_embed_pending(encoder=encoder)
    products_rescore(Product.objects.all(), scorer="local")
    shop = Shop.objects.get(domain=SHOP)
    assert reconcile_shop(shop=shop).drift == 0
    product = Product.objects.live().first()
    get_backend().update(str(product.pk), {"embedding": None})  # the index lost one vector
    report = reconcile_shop(shop=shop, repair=True)
    assert report.differing == [str(product.pk)]
    assert len(get_backend().get(str(product.pk))["embedding"]) == 384
    assert reconcile_shop(shop=shop).drift == 0


def test_one_embedder_at_a_time(client, encoder):
    import psycopg
    from django.db import connection

    _feeder8(client, "a")
    params = connection.get_connection_params()
    with psycopg.connect(
        **{k: v for k, v in params.items() if k != "cursor_factory"}, autocommit=True
    ) as other:
        other.execute("SELECT pg_advisory_lock(hashtext('shopsync.embeddings'))")  # another worker
        assert products_embed_pending(encoder=encoder).products == 0
        other.execute("SELECT pg_advisory_unlock(hashtext('shopsync.embeddings'))")
    assert products_embed_pending(encoder=encoder).products == 1
