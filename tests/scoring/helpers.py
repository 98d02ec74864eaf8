"""Scoring test data: the real 84-product catalog, linked to Shopify ids, and a synthetic but
realistic order stream (orders/create payloads built from the real order delivery's shape)."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from django.core.management import call_command

from catalog.models import Product, Shop
from catalog.services import order_record
from tests.helpers import shared_fixture

CATALOG = "catalog/products_export__hair-extensions-store_2025__84-products.csv"
ORDER = "webhooks/orders_create__membi-devstore_2025-01__body.json"
SHOP = "hair-extensions-demo.myshopify.com"
FIRST_ID = 8_000_000_000_000


def catalog_linked() -> list[Product]:
    """Backfill the real catalog; give every product a Shopify id, as its first webhook would."""
    call_command("backfill", "--from-file", str(shared_fixture(CATALOG)), "--shop", SHOP, verbosity=0)
    products = list(Product.objects.live().order_by("pk"))
    for offset, product in enumerate(products):
        product.shopify_id = FIRST_ID + offset
    Product.objects.bulk_update(products, ["shopify_id"])
    return products


def order_stream(products: list[Product], *, now: datetime, orders: int = 300, seed: int = 4) -> int:
    """Orders over the last 60 days, popularity skewed (a few products sell most), recorded through
    catalog.services.order_record like orders/create deliveries. Returns line items recorded."""
    template = json.loads(shared_fixture(ORDER).read_text())
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(products))]
    shop = Shop.objects.get(domain=SHOP)
    line_id = 1
    for number in range(orders):
        ordered_at = now - timedelta(days=60 * rng.random() ** 1.5)
        picks = rng.choices(products, weights=weights, k=rng.randint(1, 3))
        lines = []
        for product in picks:
            lines.append(
                {
                    **template["line_items"][0],
                    "id": line_id,
                    "product_id": product.shopify_id,
                    "quantity": rng.randint(1, 3),
                    "title": product.title,
                }
            )
            line_id += 1
        payload = {
            **template,
            "id": 5_000_000 + number,
            "created_at": ordered_at.isoformat(),
            "line_items": lines,
        }
        order_record(shop=shop, payload=payload)
    return line_id - 1
