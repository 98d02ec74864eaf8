"""The drain: webhook deliveries applied to stored products and the index, in any order."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from catalog.models import InventoryLevel, OrderLine, Product, Shop
from search.api import search_products
from search.backends import get_backend
from sync.models import WebhookEvent
from sync.pipeline import drain
from tests.conftest import post_webhook, webhook_body

pytestmark = pytest.mark.django_db
FEEDER8 = "products_update__feeder8_2024-01__raw_body.json"
SWORDFOX = "products_create-or-update__swordfox-wiw_2020-05__raw_body.json"
DELETE = "products_delete__shopify-documented-example__raw_body.json"


def _variant_of(body: bytes, **changes) -> bytes:
    product = json.loads(body)
    product.update(changes)
    return json.dumps(product).encode()


def _outcomes() -> dict[str, str]:
    return dict(WebhookEvent.objects.values_list("webhook_id", "outcome"))


def test_update_arriving_before_older_create_keeps_newer_data(client, index):
    original = webhook_body(FEEDER8)
    newer = _variant_of(original, title="Ski Wax Deluxe", updated_at="2024-05-06T18:00:00+07:00")
    older = _variant_of(original, title="Ski Wax Original", updated_at="2024-03-05T14:52:06+07:00")
    assert post_webhook(client, newer, webhook_id="upd", topic="products/update").status_code == 200
    assert post_webhook(client, older, webhook_id="cre", topic="products/create").status_code == 200
    drain()
    product = Product.objects.get(shopify_id=9079211262258)
    assert product.title == "Ski Wax Deluxe"
    assert _outcomes() == {"upd": "applied", "cre": "stale"}
    assert [h.document["title"] for h in search_products("wax")] == ["Ski Wax Deluxe"]


def test_processing_twice_changes_nothing(client):
    post_webhook(client, webhook_body(FEEDER8), webhook_id="a")
    drain()
    post_webhook(client, webhook_body(FEEDER8), webhook_id="b")  # same payload, new delivery id
    drain()
    assert _outcomes() == {"a": "applied", "b": "no-op"}
    assert Product.objects.count() == 1


def test_updates_of_one_product_in_a_batch_become_one_write(client, index_faults):
    original = webhook_body(FEEDER8)
    minutes = [3, 1, 5, 2, 4]  # arrival order differs from updated_at order
    for minute in minutes:
        body = _variant_of(original, title=f"Wax v{minute}", updated_at=f"2024-05-06T18:0{minute}:00+07:00")
        post_webhook(client, body, webhook_id=f"m{minute}")
    stats = drain()
    assert stats.outcomes == {"applied": 1, "stale": 4}
    content = [r.write.fields["title"] for r in index_faults.results if r.write.writer == "shopify"]
    assert content == ["Wax v5"]
    assert Product.objects.get().title == "Wax v5"
    superseded = WebhookEvent.objects.get(webhook_id="m3")
    assert superseded.outcome == "stale" and "superseded by event" in superseded.note


def test_delete_removes_exactly_that_product(client, index):
    shop = "shop-a.myshopify.com"
    target = _variant_of(webhook_body(FEEDER8), id=788032119674292922, title="Doomed Board", handle="doomed")
    post_webhook(client, target, shop=shop, webhook_id="c1")
    post_webhook(client, webhook_body(FEEDER8), shop=shop, webhook_id="c2")
    drain()
    assert {h.document["title"] for h in search_products("doomed OR wax", shop=shop)} >= {"Doomed Board"}
    assert (
        post_webhook(
            client, webhook_body(DELETE), topic="products/delete", shop=shop, webhook_id="d"
        ).status_code
        == 200
    )
    drain()
    assert _outcomes()["d"] == "applied"
    deleted = Product.objects.get(shopify_id=788032119674292922)
    assert deleted.deleted_at is not None
    assert list(Product.objects.live().values_list("shopify_id", flat=True)) == [9079211262258]
    assert index.get(str(deleted.pk)) is None
    assert index.count(shop=shop) == 1
    assert search_products("doomed", shop=shop) == []


def test_a_delete_whose_document_is_already_gone_is_not_left_pending(client, index):
    target = _variant_of(webhook_body(FEEDER8), id=788032119674292922)
    post_webhook(client, target, webhook_id="c")
    drain()
    product = Product.objects.get()
    index.delete(str(product.pk))  # lost meanwhile (an index rebuilt, an operator's cleanup)
    post_webhook(client, webhook_body(DELETE), topic="products/delete", webhook_id="d")
    drain()
    assert _outcomes()["d"] == "applied"
    product.refresh_from_db()
    assert product.deleted_at is not None and index.get(str(product.pk)) is None
    assert product.index_vector == product.version_vector  # nothing left to send


def test_delete_of_unknown_id_is_a_200_no_op(client):
    response = post_webhook(client, webhook_body(DELETE), topic="products/delete", webhook_id="d")
    assert response.status_code == 200
    drain()
    event = WebhookEvent.objects.get()
    assert (event.status, event.outcome) == ("done", "no-op")
    assert "no product 788032119674292922" in event.note


def test_stale_update_does_not_resurrect_a_deleted_product(client):
    body = _variant_of(webhook_body(FEEDER8), id=788032119674292922)
    post_webhook(client, body, webhook_id="create")
    drain()
    post_webhook(client, webhook_body(DELETE), topic="products/delete", webhook_id="delete")
    post_webhook(client, _variant_of(body, title="Late retry"), webhook_id="late")
    drain()
    assert _outcomes()["late"] == "stale"
    assert Product.objects.live().count() == 0


def test_2020_payload_without_status_is_searchable(client):
    post_webhook(client, webhook_body(SWORDFOX), shop="wiw.myshopify.com", topic="products/create")
    drain()
    product = Product.objects.get(shopify_id=4643710664801)
    assert product.status == "active"
    assert [h.document["vendor"] for h in search_products("wardrobe")] == ["The Walk in Wardrobe"]


def test_inventory_levels_ordered_by_their_own_updated_at(client, index):
    shop = "wiw.myshopify.com"
    post_webhook(client, webhook_body(SWORDFOX), shop=shop, webhook_id="p")
    drain()
    level = json.loads(webhook_body("inventory_levels_update__swordfox-wiw_2020-05__raw_body.json"))
    newer = dict(level, available=7, updated_at="2020-05-26T12:00:00+12:00")
    older = dict(level, available=3, updated_at="2020-05-26T11:00:00+12:00")
    for webhook_id, body in (("new", newer), ("old", older)):
        post_webhook(
            client,
            json.dumps(body).encode(),
            topic="inventory_levels/update",
            shop=shop,
            webhook_id=webhook_id,
        )
    drain()
    assert _outcomes() == {"p": "applied", "new": "applied", "old": "stale"}
    stored = InventoryLevel.objects.get(inventory_item_id=34269676896353, location_id=36167909473)
    assert stored.available == 7
    product = Product.objects.get(shopify_id=4643710664801)
    assert index.get(str(product.pk))["inventory_total"] == 7


def test_inventory_before_product_is_parked_then_counted(client, index):
    shop = "wiw.myshopify.com"
    level = webhook_body("inventory_levels_update__swordfox-wiw_2020-05__raw_body.json")
    post_webhook(client, level, topic="inventory_levels/update", shop=shop, webhook_id="inv")
    drain()
    assert index.count() == 0  # no half-empty document
    assert "counted once it arrives" in WebhookEvent.objects.get(webhook_id="inv").note
    post_webhook(client, webhook_body(SWORDFOX), shop=shop, webhook_id="p")
    drain()
    product = Product.objects.get(shopify_id=4643710664801)
    assert index.get(str(product.pk))["inventory_total"] == 0  # the parked level, not the payload's 1


def test_stock_delivered_after_its_product_in_one_batch_counts_at_once(client, index):
    shop = "wiw.myshopify.com"
    level = webhook_body("inventory_levels_update__swordfox-wiw_2020-05__raw_body.json")
    post_webhook(client, webhook_body(SWORDFOX), shop=shop, webhook_id="p")
    post_webhook(client, level, topic="inventory_levels/update", shop=shop, webhook_id="inv")
    drain()  # one batch: the product is applied before the batch's stock
    assert _outcomes() == {"p": "applied", "inv": "applied"}
    assert "counted once it arrives" not in WebhookEvent.objects.get(webhook_id="inv").note
    product = Product.objects.get(shopify_id=4643710664801)
    assert index.get(str(product.pk))["inventory_total"] == 0  # the level's, not the payload's 1


def test_drain_command_lists_dead_lettered_events_too(client, capsys):
    from django.core.management import call_command

    post_webhook(client, webhook_body(SWORDFOX), shop="wiw.myshopify.com", webhook_id="p")
    post_webhook(client, b'{"id": 1}', shop="wiw.myshopify.com", webhook_id="bad")
    call_command("drain", "--verbose-events")
    out = capsys.readouterr().out
    bad = WebhookEvent.objects.get(webhook_id="bad")
    assert f"#{bad.pk} products/update" in out and "malformed payload: product has no 'title'" in out
    assert "failed 1" in out


def test_orders_create_records_line_items(client):
    body = webhook_body("orders_create__membi-devstore_2025-01__body.json")
    post_webhook(client, body, topic="orders/create", shop="membi.myshopify.com", webhook_id="o1")
    post_webhook(client, body, topic="orders/create", shop="membi.myshopify.com", webhook_id="o2")
    drain()
    assert _outcomes() == {"o1": "applied", "o2": "no-op"}
    lines = OrderLine.objects.all()
    assert lines.count() == 3
    assert all(line.product_shopify_id and line.quantity > 0 for line in lines)
    assert any("測試商品" in line.title for line in lines)


def test_unknown_topic_is_stored_and_skipped(client):
    post_webhook(client, b'{"id": 1}', topic="collections/update", webhook_id="x")
    drain()
    event = WebhookEvent.objects.get()
    assert (event.status, event.outcome) == ("skipped", "skipped")


def test_malformed_product_fails_with_reason_and_others_go_on(client):
    post_webhook(client, b'{"id": 5, "variants": []}', webhook_id="bad")
    post_webhook(client, webhook_body(FEEDER8), webhook_id="good")
    stats = drain()
    assert stats.outcomes == {"failed": 1, "applied": 1}
    bad = WebhookEvent.objects.get(webhook_id="bad")
    assert bad.status == "dead" and "no 'title'" in bad.error
    assert bad.dead_letter.kind == "permanent" and "no 'title'" in bad.dead_letter.error


def test_index_outage_is_retried_not_lost(client, index_faults):
    index_faults.fail("retryable", "database is locked")
    post_webhook(client, webhook_body(FEEDER8), webhook_id="e")
    stats = drain()
    assert stats.retried == 1
    event = WebhookEvent.objects.get()
    assert event.status == "pending" and "locked" in event.error
    product = Product.objects.get()  # stored; its index write is pending, not lost
    assert product.version_vector == {"shopify": 1, "inventory": 1} and product.index_vector == {}
    index_faults.heal()
    WebhookEvent.objects.update(next_attempt_at=event.received_at)
    assert drain().outcomes == {"applied": 1}
    product.refresh_from_db()
    assert product.index_vector == product.version_vector
    assert Shop.objects.get().products.count() == 1
    assert WebhookEvent.objects.get().note == "stored by an earlier attempt; index written now"


def test_version_vector_is_stored_on_the_product_and_in_the_document(client, index):
    post_webhook(client, webhook_body(FEEDER8), webhook_id="a")
    drain()
    product = Product.objects.get()
    assert product.version_vector == {"shopify": 1, "inventory": 1}
    doc = index.get(str(product.pk))
    assert (doc["vv_shopify"], doc["vv_inventory"]) == (1, 1)


def test_inventory_only_changes_cause_no_content_writes(client, index_faults):
    """1,000 inventory-only changes to indexed products: 0 content writes, 0 re-embeddings."""
    shop = "wiw.myshopify.com"
    products = []
    for n in range(10):
        body = json.loads(webhook_body(SWORDFOX))
        body.update(id=4643710664801 + n, handle=f"p{n}", title=f"Product {n}")
        body["variants"][0]["inventory_item_id"] = 34269676896353 + n
        products.append(body)
        post_webhook(
            client, json.dumps(body).encode(), shop=shop, topic="products/create", webhook_id=f"p{n}"
        )
    drain()
    embed_hashes = dict(Product.objects.values_list("pk", "embed_text_hash"))
    index_faults.results.clear()
    for i in range(1000):
        level = {
            "inventory_item_id": 34269676896353 + i % 10,
            "location_id": 36167909473 + i // 10,
            "available": i,
            "updated_at": "2020-05-26T11:35:10+12:00",
        }
        post_webhook(
            client, json.dumps(level).encode(), topic="inventory_levels/update", shop=shop, webhook_id=f"i{i}"
        )
    stats = drain()
    assert stats.outcomes == {"applied": 1000}
    writers = {r.write.writer for r in index_faults.results}
    # One inventory write per product per batch of 500 events: the batch coalesces them.
    assert writers == {"inventory"} and len(index_faults.results) == 20
    assert dict(Product.objects.values_list("pk", "embed_text_hash")) == embed_hashes
    doc = index_faults.results[-1].write
    assert sorted(doc.fields) == ["inventory_total"]
    from catalog.selectors import product_inventory_total
    from search.backends import get_backend

    for product in Product.objects.all():
        assert get_backend().get(str(product.pk))["inventory_total"] == product_inventory_total(product)


def test_a_failed_newest_update_does_not_take_the_superseded_one_with_it(client):
    original = webhook_body(FEEDER8)
    good = _variant_of(original, title="Valid Older Edit", updated_at="2024-05-06T18:00:00+07:00")
    broken = json.loads(
        _variant_of(original, title="Broken Newer Edit", updated_at="2024-05-06T19:00:00+07:00")
    )
    broken["variants"][0]["price"] = "not-a-price"
    post_webhook(client, good, webhook_id="good")
    post_webhook(client, json.dumps(broken).encode(), webhook_id="broken")
    drain()
    assert _outcomes() == {"good": "applied", "broken": "failed"}
    assert Product.objects.get().title == "Valid Older Edit"


def test_inventory_retry_after_a_failed_index_write_still_writes_the_index(client, index_faults):
    shop = "wiw.myshopify.com"
    post_webhook(client, webhook_body(SWORDFOX), shop=shop, webhook_id="p")
    drain()
    level = json.loads(webhook_body("inventory_levels_update__swordfox-wiw_2020-05__raw_body.json"))
    post_webhook(
        client,
        json.dumps(dict(level, available=9)).encode(),
        topic="inventory_levels/update",
        shop=shop,
        webhook_id="inv",
    )
    index_faults.fail("retryable", "429 Too Many Requests")
    drain()
    index_faults.heal()
    WebhookEvent.objects.filter(status="pending").update(next_attempt_at=timezone.now())
    drain()
    event = WebhookEvent.objects.get(webhook_id="inv")
    assert (event.status, event.outcome) == ("done", "applied")
    product = Product.objects.get()
    assert product.index_vector == product.version_vector
    assert get_backend().get(str(product.pk))["inventory_total"] == 9
