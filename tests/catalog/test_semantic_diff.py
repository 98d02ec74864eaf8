"""Semantic diff: only real content changes write content, re-embed or rescore (DESIGN §4.5)."""

from __future__ import annotations

import json

import pytest

from catalog.models import Product, Shop
from catalog.normalize import product_from_rest
from catalog.services import APPLIED, NOOP, product_apply
from tests.conftest import webhook_body

pytestmark = pytest.mark.django_db
FEEDER8 = "products_update__feeder8_2024-01__raw_body.json"


@pytest.fixture
def shop():
    return Shop.objects.create(domain="feeder8.myshopify.com")


def _payload(**changes) -> dict:
    return {**json.loads(webhook_body(FEEDER8)), **changes}


def _apply(shop, payload):
    return product_apply(shop=shop, data=product_from_rest(payload), source="webhook")


def test_echo_of_stored_content_is_a_no_op_even_with_a_newer_updated_at(shop):
    first = _apply(shop, _payload())
    assert (first.outcome, first.embed_changed, first.score_changed) == (APPLIED, True, True)
    echo = _apply(shop, _payload(updated_at="2024-05-07T09:00:00+07:00"))
    assert echo.outcome == NOOP
    product = Product.objects.get()
    assert product.update_type == "auto"
    assert product.shopify_updated_at.isoformat() == "2024-05-07T02:00:00+00:00"
    # The write-back loop ends: our own echo arriving again changes nothing either.
    assert _apply(shop, _payload(updated_at="2024-05-07T09:00:00+07:00")).outcome == NOOP


def test_inventory_only_change_is_not_a_content_change(shop):
    _apply(shop, _payload())
    payload = _payload(updated_at="2024-05-07T09:00:00+07:00")
    for variant in payload["variants"]:
        variant["inventory_quantity"] = 77
    result = _apply(shop, payload)
    assert result.outcome == APPLIED
    assert (result.content_changed, result.inventory_changed) == (False, True)
    assert (result.embed_changed, result.score_changed) == (False, False)
    assert Product.objects.get().update_type == "auto"


def test_title_change_is_content_that_re_embeds(shop):
    _apply(shop, _payload())
    result = _apply(shop, _payload(title="Ski Wax Pro", updated_at="2024-05-07T09:00:00+07:00"))
    assert (result.content_changed, result.embed_changed, result.score_changed) == (True, True, False)
    assert Product.objects.get().update_type == "manual"


def test_price_change_rescore_without_re_embedding(shop):
    _apply(shop, _payload())
    payload = _payload(updated_at="2024-05-07T09:00:00+07:00")
    payload["variants"][0]["price"] = "99.00"
    result = _apply(shop, payload)
    assert (result.content_changed, result.embed_changed, result.score_changed) == (True, False, True)


def test_inventory_only_webhook_writes_only_inventory_fields(client, index_faults):
    from sync.pipeline import drain
    from tests.conftest import post_webhook

    post_webhook(client, json.dumps(_payload()).encode(), webhook_id="create")
    drain()
    index_faults.results.clear()
    payload = _payload(updated_at="2024-05-07T09:00:00+07:00")
    for variant in payload["variants"]:
        variant["inventory_quantity"] = 5
    post_webhook(client, json.dumps(payload).encode(), webhook_id="stock")
    drain()
    written = [(r.write.writer, sorted(r.write.fields), r.outcome) for r in index_faults.results]
    assert written == [("inventory", ["inventory_total"], "applied")]


def test_variants_are_rewritten_only_when_they_change(shop):
    from catalog.models import Variant

    _apply(shop, _payload())
    before = list(Variant.objects.order_by("pk").values_list("pk", "price"))
    _apply(shop, _payload(title="Ski Wax Pro", updated_at="2024-05-07T09:00:00+07:00"))
    assert list(Variant.objects.order_by("pk").values_list("pk", "price")) == before  # left as they were

    payload = _payload(title="Ski Wax Pro", updated_at="2024-05-08T09:00:00+07:00")
    payload["variants"][0]["price"] = "99.50"
    payload["variants"] = payload["variants"][:2]  # and one variant removed in Shopify
    result = _apply(shop, payload)
    assert result.outcome == APPLIED and result.content_changed
    stored = list(Variant.objects.order_by("pk").values_list("shopify_id", "price"))
    assert [str(price) for _, price in stored] == ["99.5000", str(before[1][1])]
    assert [vid for vid, _ in stored] == [v["id"] for v in payload["variants"]]
