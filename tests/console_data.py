"""Data for the console's tests and the browser test: the real demo catalog loaded through the
backfill service, and webhook traffic derived from it (edits, late retries, stock, a malformed
delivery that ends in the DLQ), posted through the real endpoint and drained."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

from django.test import Client
from django.utils import timezone

from catalog.models import Product, Shop
from sync.actions import sync_run_start
from sync.models import SyncRun, WebhookEvent
from sync.pipeline import drain
from sync.services import shop_get_or_create
from tests.conftest import post_webhook
from tests.helpers import own_fixture, shared_fixture

DEMO_SHOP = "hair-extensions-demo.myshopify.com"
DEMO_CATALOG = "catalog/products_export__hair-extensions-store_2025__84-products.csv"
SMALL_CATALOG = "catalog/products_export__renamed-dialect_2025.csv"
ID_BASE = 7_200_000_000_000  # ids "Shopify" gives the CSV's products (exports carry none)


def load_catalog(domain: str = DEMO_SHOP, *, real: bool = True) -> SyncRun:
    """Backfill the real demo export (or our small one) into `domain` through the run service."""
    path = shared_fixture(DEMO_CATALOG) if real else own_fixture(SMALL_CATALOG)
    shop = shop_get_or_create(domain=domain)
    return sync_run_start(shop=shop, kind=SyncRun.Kind.BACKFILL, source=str(path), run_now=True)


def product_payload(product: Product, shopify_id: int, updated_at: datetime, *, title: str = "") -> dict:
    """A products/update body for a stored product, shaped as Shopify sends it."""
    variants = [
        {
            "id": shopify_id * 10 + i,
            "product_id": shopify_id,
            "title": v.title,
            "price": str(v.price or "0"),
            "sku": v.sku,
            "position": v.position,
            "inventory_item_id": shopify_id * 100 + i,
            "inventory_quantity": v.inventory_quantity,
        }
        for i, v in enumerate(product.variants.all(), 1)
    ]
    return {
        "id": shopify_id,
        "title": title or product.title,
        "body_html": product.body_html,
        "vendor": product.vendor,
        "product_type": product.product_type,
        "handle": product.handle,
        "tags": ", ".join(product.tags),
        "status": product.status,
        "updated_at": updated_at.isoformat(),
        "variants": variants,
    }


def post(client: Client, shop: Shop, topic: str, payload: dict | bytes, **kwargs):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = post_webhook(client, body, topic=topic, shop=shop.domain, **kwargs)
    assert response.status_code == 200, response.content
    return response


def generate_activity(
    client: Client, shop: Shop, *, products: int = 12, stock_updates: int = 1, spread_minutes: int = 170
) -> None:
    """Webhook traffic on the shop's first `products` products, drained, then spread over the
    last `spread_minutes` with realistic trigger-to-index lags (so the charts have a shape)."""
    now = datetime.now(UTC).replace(microsecond=0)
    chosen = list(Product.objects.filter(shop=shop).order_by("id")[:products])
    for n, product in enumerate(chosen):
        shopify_id = ID_BASE + product.pk
        post(
            client, shop, "products/update", product_payload(product, shopify_id, now - timedelta(minutes=30))
        )
        if n % 2 == 0:
            edit = product_payload(product, shopify_id, now, title=f"{product.title} (new)")
            post(client, shop, "products/update", edit)
        if n % 3 == 0:  # a late retry of an older edit: stale
            post(
                client,
                shop,
                "products/update",
                product_payload(product, shopify_id, now - timedelta(hours=2)),
            )
    drain()  # the products exist (with their inventory items) before their stock moves
    for n, product in enumerate(chosen):
        item = (ID_BASE + product.pk) * 100 + 1
        for k in range(stock_updates):  # stock moves through the day: the bulk of the traffic
            level = {"inventory_item_id": item, "location_id": 1, "available": 40 - k - n % 7}
            at = now - timedelta(minutes=stock_updates - k)
            post(client, shop, "inventory_levels/update", {**level, "updated_at": at.isoformat()})
    post(client, shop, "products/update", {"id": 1}, webhook_id="broken-1")
    post(client, shop, "products/update", {"id": 1}, webhook_id="broken-1")  # duplicate
    drain()
    _spread(shop, spread_minutes)


def _spread(shop: Shop, minutes: int) -> None:
    rng = random.Random(6)
    now = timezone.now()
    events = list(WebhookEvent.objects.filter(shop=shop).order_by("id"))
    for i, event in enumerate(events):
        received = now - timedelta(
            minutes=minutes * (len(events) - i) / len(events), seconds=rng.uniform(0, 30)
        )
        event.triggered_at = received - timedelta(seconds=rng.uniform(0.2, 1.5))
        event.received_at = received
        if event.processed_at:
            event.processed_at = received + timedelta(seconds=rng.lognormvariate(0.2, 0.8))
        event.save(update_fields=["triggered_at", "received_at", "processed_at"])
    # The catalog was imported before that traffic.
    Product.objects.filter(shop=shop).update(created_at=now - timedelta(minutes=minutes + 15))
