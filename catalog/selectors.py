"""Reads over the catalog."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Q, Sum

from .models import InventoryLevel, Product


def product_inventory_total(product: Product) -> int | None:
    """Stock over all locations: per-location levels where we have them, else the payload totals.

    A variant whose item has any InventoryLevel row counts those levels (they are newer and per
    location); otherwise its `inventory_quantity` from the product payload counts.
    """
    return products_inventory_totals([product])[product.pk]


def products_inventory_totals(products: Iterable[Product]) -> dict[int, int | None]:
    """`product_inventory_total` of many products with one query (variants should be prefetched)."""
    products = list(products)
    items_by_shop: dict[int, set[int]] = defaultdict(set)
    for product in products:
        for variant in product.variants.all():
            if variant.inventory_item_id is not None:
                items_by_shop[product.shop_id].add(variant.inventory_item_id)
    levels: dict[tuple[int, int], int] = {}
    if items_by_shop:
        match = Q()
        for shop_id, items in items_by_shop.items():
            match |= Q(shop_id=shop_id, inventory_item_id__in=items)
        rows = (
            InventoryLevel.objects.filter(match)
            .values("shop_id", "inventory_item_id")
            .annotate(total=Sum("available"))
        )
        levels = {(r["shop_id"], r["inventory_item_id"]): r["total"] or 0 for r in rows}
    totals: dict[int, int | None] = {}
    for product in products:
        quantities = [
            levels.get((product.shop_id, v.inventory_item_id), v.inventory_quantity)
            for v in product.variants.all()
        ]
        known = [q for q in quantities if q is not None]
        totals[product.pk] = sum(known) if known else None
    return totals
