"""The console's actions, dashboard and product page, as a user of the admin sees them."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.html import escape

from catalog.models import Product
from search.backends import get_backend
from sync.actions import sync_run_execute
from sync.models import DeadLetter, SyncRun, WebhookEvent
from sync.pipeline import drain
from tests.conftest import post_webhook
from tests.console_data import ID_BASE, load_catalog, post, product_payload
from tests.helpers import own_fixture

pytestmark = pytest.mark.django_db
SHOP = "console-a.myshopify.com"


def act(client, model: str, action: str, ids: list[int]) -> list[str]:
    """Run an admin action on the changelist as a user would; returns the messages shown."""
    response = client.post(
        f"/admin/{model}/", {"action": action, "_selected_action": [str(i) for i in ids]}, follow=True
    )
    assert response.status_code == 200
    return [str(m) for m in get_messages(response.wsgi_request)] or [
        m.message for m in response.context["messages"]
    ]


@pytest.fixture
def catalog():
    run = load_catalog(SHOP, real=False)
    assert run.status == SyncRun.Status.DONE, run.summary
    return run


def _dead_letters(client, n: int) -> list[int]:
    for i in range(n):
        post_webhook(client, json.dumps({"id": i + 1}).encode(), shop=SHOP, webhook_id=f"bad-{i}")
    drain()
    return list(DeadLetter.objects.order_by("pk").values_list("pk", flat=True))


def test_backfill_run_records_its_progress(catalog):
    assert catalog.cursor == Product.objects.filter(shop__domain=SHOP).count() > 0
    assert catalog.counts["applied"] == catalog.cursor and catalog.counts["indexed"] == catalog.cursor
    assert catalog.summary.startswith(f"read {catalog.cursor}: applied {catalog.cursor}")
    assert get_backend().count(shop=SHOP) == catalog.cursor


def test_resync_rewrites_a_drifted_document(admin_client, catalog):
    product = Product.objects.filter(shop__domain=SHOP).first()
    get_backend().update(str(product.pk), {"title": "drifted"})
    assert act(admin_client, "catalog/product", "resync", [product.pk]) == ["resynced 1 of 1"]
    assert get_backend().get(str(product.pk))["title"] == product.title
    timeline = admin_client.get(f"/admin/catalog/product/{product.pk}/change/").context["timeline"]
    assert timeline[0].kind == "admin" and "index document (resync)" in timeline[0].title


def test_resync_says_when_the_index_refuses(admin_client, catalog, monkeypatch):
    from search.backends.base import IndexError_
    from search.backends.embedded import EmbeddedBackend

    def refuse(self, document):
        raise IndexError_("503 Service Unavailable", retryable=True)

    monkeypatch.setattr(EmbeddedBackend, "put", refuse)
    ids = list(Product.objects.filter(shop__domain=SHOP).values_list("pk", flat=True)[:2])
    [message] = act(admin_client, "catalog/product", "resync", ids)
    assert message.startswith("resynced 0 of 2 (") and "503 Service Unavailable" in message
    # Nothing was resynced, so no product's timeline says it was.
    timeline = admin_client.get(f"/admin/catalog/product/{ids[0]}/change/").context["timeline"]
    assert not any("resync" in entry.title for entry in timeline)


def test_reprocess_queues_finished_events_and_leaves_waiting_ones(admin_client, client, catalog):
    product = Product.objects.filter(shop__domain=SHOP).first()
    post(client, product.shop, "products/update", product_payload(product, ID_BASE, timezone.now()))
    drain()
    done = WebhookEvent.objects.get()
    post(client, product.shop, "products/update", product_payload(product, ID_BASE, timezone.now()))
    waiting = WebhookEvent.objects.exclude(pk=done.pk).get()
    messages = act(admin_client, "sync/webhookevent", "reprocess", [done.pk, waiting.pk])
    assert messages == ["queued for reprocessing 1 of 2 (1 pending)"]
    done.refresh_from_db()
    assert (done.status, done.outcome, done.attempts) == ("pending", "", 0)
    drain()
    done.refresh_from_db()
    assert (done.status, done.outcome) == ("done", "stale")  # harmless: the newer one won


def test_dead_letters_replay_single_and_bulk_then_discard(admin_client, client):
    ids = _dead_letters(client, 3)
    event = WebhookEvent.objects.get(dead_letter__pk=ids[0])
    listed = admin_client.get("/admin/sync/deadletter/", {"resolved": "open"}).content.decode()
    assert f'href="/admin/sync/webhookevent/{event.pk}/change/"' in listed
    assert act(admin_client, "sync/deadletter", "replay", ids[:1]) == ["replayed 1 of 1"]
    assert WebhookEvent.objects.get(dead_letter__pk=ids[0]).status == "pending"
    drain()  # still malformed: dead again, the same letter
    assert act(admin_client, "sync/deadletter", "replay", ids) == ["replayed 3 of 3"]
    drain()
    assert act(admin_client, "sync/deadletter", "discard", ids[:2]) == ["discarded 2 of 2"]
    assert act(admin_client, "sync/deadletter", "replay", ids) == ["replayed 1 of 3 (2 already resolved)"]
    assert DeadLetter.objects.filter(resolution="discarded").count() == 2


def test_reconcile_run_from_the_shop_repairs_a_missing_document(admin_client, catalog):
    product = Product.objects.filter(shop__domain=SHOP).first()
    get_backend().delete(str(product.pk))
    [message] = act(admin_client, "catalog/shop", "start_reconcile", [product.shop_id])
    run = SyncRun.objects.get(kind="reconcile")
    assert message == f"started 1 of 1 reconcile runs: #{run.pk}" and run.status == "queued"
    run = sync_run_execute(run_id=run.pk)  # what the worker does with the queued task
    assert run.status == "done" and run.counts["missing"] == 1 and run.counts["repaired"] == 1
    assert get_backend().get(str(product.pk)) is not None
    assert sync_run_execute(run_id=run.pk).finished_at == run.finished_at  # a second delivery: no-op


def test_backfill_from_an_uploaded_export(admin_client, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    load_catalog("console-b.myshopify.com", real=False)  # makes the shop; its run is not this one
    shop_pk = SyncRun.objects.get().shop_id
    upload = SimpleUploadedFile(
        "export.csv", own_fixture("catalog/products_export__renamed-dialect_2025.csv").read_bytes()
    )
    response = admin_client.post(f"/admin/catalog/shop/{shop_pk}/backfill/", {"export": upload})
    run = SyncRun.objects.latest("pk")
    assert response.status_code == 302 and response["Location"].endswith(
        f"/admin/sync/syncrun/{run.pk}/change/"
    )
    run = sync_run_execute(run_id=run.pk)
    assert run.status == "done" and run.counts == {"no-op": run.cursor, "indexed": 0}  # same file again
    assert (tmp_path / "uploads").is_dir()


def test_dashboard_shows_backlog_freshness_outcomes_and_dead_letters(admin_client, client, catalog):
    shop_products = list(Product.objects.filter(shop__domain=SHOP).order_by("pk"))
    now = timezone.now()
    for n, product in enumerate(shop_products):
        post(client, product.shop, "products/update", product_payload(product, ID_BASE + n, now))
    drain()
    for event in WebhookEvent.objects.all():  # triggered 2 s before the index write
        WebhookEvent.objects.filter(pk=event.pk).update(
            triggered_at=event.processed_at - timezone.timedelta(seconds=2)
        )
    _dead_letters(client, 1)
    post(client, shop_products[0].shop, "products/update", product_payload(shop_products[0], ID_BASE, now))

    response = admin_client.get("/admin/dashboard/")
    assert response.status_code == 200
    stats = response.context["stats"]
    assert stats.backlog["pending"] == 1
    assert stats.dlq["open"] == 1 and stats.dlq["recent"][0].error_class == "NormalizationError"
    applied = WebhookEvent.objects.filter(outcome="applied").count()
    assert applied >= 2 and stats.outcomes["applied"] == applied and stats.outcomes["failed"] == 1
    assert stats.outcomes["applied"] + stats.outcomes["no-op"] == len(shop_products)
    assert stats.freshness["count"] == applied and stats.freshness["p50"] == pytest.approx(2.0, abs=0.01)
    assert sum(m["processed"] for m in stats.throughput) == len(shop_products) + 1
    assert stats.index["state"] == "healthy" and stats.index["behind"] == 0
    html = response.content.decode()
    assert "<svg" in html and "2.0 s" in html and "NormalizationError" in html


def test_product_page_explains_a_stale_index(admin_client, client, catalog, index_faults):
    product = Product.objects.filter(shop__domain=SHOP).first()
    index_faults.fail("retryable", "503 Service Unavailable")
    post(
        client,
        product.shop,
        "products/update",
        product_payload(product, ID_BASE, timezone.now(), title="New"),
    )
    drain()
    response = admin_client.get(f"/admin/catalog/product/{product.pk}/change/")
    report = response.context["sync_report"]
    assert report.state == "stale in index" and "503 Service Unavailable" in report.headline
    assert report.behind and report.behind[0][0] == "shopify"
    assert report.last_event.topic == "products/update" and report.waiting
    event = WebhookEvent.objects.get()
    assert any(entry.event_id == event.pk for entry in response.context["timeline"])

    listed = admin_client.get("/admin/catalog/product/", {"sync": "stale in index"})
    assert [p.pk for p in listed.context["cl"].result_list] == [product.pk]

    index_faults.heal()
    assert act(admin_client, "catalog/product", "resync", [product.pk]) == ["resynced 1 of 1"]
    response = admin_client.get(f"/admin/catalog/product/{product.pk}/change/")
    assert response.context["sync_report"].state == "pending"  # the event still waits for its retry
    WebhookEvent.objects.update(next_attempt_at=timezone.now())
    drain()
    response = admin_client.get(f"/admin/catalog/product/{product.pk}/change/")
    assert response.context["sync_report"].state == "in sync"
    assert "In sync" in response.content.decode()


def test_timeline_finds_every_delivery_of_the_product_however_busy_the_shop(
    admin_client, client, catalog, monkeypatch
):
    import sync.product_status as product_status

    product, *others = Product.objects.filter(shop__domain=SHOP).order_by("pk")[:6]
    shopify_id = ID_BASE + product.pk
    post(client, product.shop, "products/update", product_payload(product, shopify_id, timezone.now()))
    drain()
    order = {
        "id": 820982911946154508,
        "created_at": timezone.now().isoformat(),
        "line_items": [{"id": 1, "product_id": shopify_id, "variant_id": shopify_id * 10, "quantity": 2}],
    }
    post(client, product.shop, "orders/create", order)
    level = {"inventory_item_id": shopify_id * 100 + 1, "location_id": 1, "available": 7}
    post(client, product.shop, "inventory_levels/update", {**level, "updated_at": timezone.now().isoformat()})
    drain()
    mine = list(WebhookEvent.objects.order_by("pk"))
    assert [e.subject_id for e in mine] == [shopify_id, order["id"], shopify_id * 100 + 1]
    # Then the shop gets busy: the product's deliveries are far behind its newest ones.
    monkeypatch.setattr(product_status, "TIMELINE_SCAN_EVENTS", 3)
    for other in others:
        post(
            client, other.shop, "products/update", product_payload(other, ID_BASE + other.pk, timezone.now())
        )
    drain()
    timeline = admin_client.get(f"/admin/catalog/product/{product.pk}/change/").context["timeline"]
    shown = [entry.event_id for entry in timeline if entry.kind == "event"]
    assert shown == [e.pk for e in reversed(mine)]  # all three, newest first, none of the others
    # Ops find a product's deliveries in the event list by its Shopify id, and a word does no harm.
    listed = admin_client.get("/admin/sync/webhookevent/", {"q": str(shopify_id)}).context["cl"].result_list
    assert [e.pk for e in listed] == [mine[0].pk]
    assert admin_client.get("/admin/sync/webhookevent/", {"q": "wax"}).status_code == 200


def test_product_page_names_the_dead_letter(admin_client, client, catalog):
    product = Product.objects.filter(shop__domain=SHOP).first()
    post(client, product.shop, "products/update", product_payload(product, ID_BASE, timezone.now()))
    drain()
    broken = product_payload(product, ID_BASE, timezone.now())
    broken["updated_at"] = "not a date"
    post(client, product.shop, "products/update", broken)
    drain()
    report = admin_client.get(f"/admin/catalog/product/{product.pk}/change/").context["sync_report"]
    assert report.state == "failed" and "dead-letter queue" in report.headline
    listed = admin_client.get("/admin/catalog/product/", {"sync": "failed"})
    assert [p.pk for p in listed.context["cl"].result_list] == [product.pk]


def test_event_page_shows_headers_and_body_verbatim(admin_client, client):
    body = b'{"id": 1,  "title": "caf\xc3\xa9 \\/ spaced"}'
    post_webhook(client, body, shop=SHOP, webhook_id="verbatim")
    event = WebhookEvent.objects.get()
    html = admin_client.get(f"/admin/sync/webhookevent/{event.pk}/change/").content.decode()
    assert "{&quot;id&quot;: 1,  &quot;title&quot;: &quot;café \\/ spaced&quot;}" in html
    assert "X-Shopify-Webhook-Id" in html and "verbatim" in html


def test_rescore_action_scores_writes_the_index_and_shows_why(admin_client, catalog):
    from scoring.models import TrendScore

    ids = list(Product.objects.filter(shop__domain=SHOP).order_by("pk").values_list("pk", flat=True))
    n = len(ids)
    assert n >= 2 and act(admin_client, "catalog/product", "rescore", ids) == [f"rescored {n} of {n}"]
    assert TrendScore.objects.filter(product_id__in=ids).count() == n
    product = Product.objects.get(pk=ids[0])
    assert 0.0 <= product.trend_score <= 1.0 and product.trend_explanation
    assert get_backend().get(str(product.pk))["trend_score"] == pytest.approx(product.trend_score)
    # Unchanged inputs: the action recomputes all the same (it is what the operator asked for).
    assert act(admin_client, "catalog/product", "rescore", ids) == [f"rescored {n} of {n}"]
    assert TrendScore.objects.filter(product_id__in=ids).count() == 2 * n

    product.refresh_from_db()
    listed = admin_client.get("/admin/catalog/product/", {"q": product.handle}).content.decode()
    assert f'<td class="field-trend">{product.trend_score:.2f}</td>' in listed
    assert f'title="{escape(product.trend_explanation)}"' in listed
    timeline = admin_client.get(f"/admin/catalog/product/{product.pk}/change/").context["timeline"]
    scores = [e for e in timeline if e.kind == "score"]
    assert len(scores) == 2 and scores[0].title == f"trend score {product.trend_score:.2f} by local"


def test_rescore_action_with_the_llm_queues_and_names_deleted_products(admin_client, catalog, settings):
    settings.SCORING_SCORER = "llm"
    products = list(Product.objects.filter(shop__domain=SHOP).order_by("pk")[:2])
    Product.objects.filter(pk=products[1].pk).update(deleted_at=timezone.now())
    messages = act(admin_client, "catalog/product", "rescore", [p.pk for p in products])
    assert messages == ["queued for rescoring by the LLM 1 of 2 (1 deleted in Shopify)"]
    queued = Product.objects.get(pk=products[0].pk)
    assert queued.trend_requested_at is not None and queued.trend_inputs_hash == ""


def test_timeline_shows_every_embedding(admin_client, client, catalog):
    from search.embeddings import products_embed_pending

    product = Product.objects.filter(shop__domain=SHOP).first()
    assert products_embed_pending().products > 0
    product.refresh_from_db()
    assert product.embedded_at is not None
    timeline = admin_client.get(f"/admin/catalog/product/{product.pk}/change/").context["timeline"]
    [entry] = [e for e in timeline if e.kind == "embedding"]
    assert entry.title == "embedded" and entry.detail == product.embedding_model
    # Its text changes: embedded again, and the timeline keeps both.
    post(
        client,
        product.shop,
        "products/update",
        product_payload(product, ID_BASE, timezone.now(), title="Renamed"),
    )
    drain()
    assert products_embed_pending().products == 1
    timeline = admin_client.get(f"/admin/catalog/product/{product.pk}/change/").context["timeline"]
    assert [e.title for e in timeline if e.kind == "embedding"] == ["embedded", "embedded"]
