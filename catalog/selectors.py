"""Reads over the catalog."""

from __future__ import annotations

from django.db.models import Sum

from .models import InventoryLevel, Product


def product_inventory_total(product: Product) -> int | None:
    """Stock over all locations: per-location levels where we have them, else the payload totals.

    A variant whose item has any InventoryLevel row counts those levels (they are newer and per
    location); otherwise its `inventory_quantity` from the product payload counts.
    """
    variants = list(product.variants.all())
    item_ids = [v.inventory_item_id for v in variants if v.inventory_item_id is not None]
    levels: dict[int, int] = {}
    if item_ids:
        rows = (
            InventoryLevel.objects.filter(shop_id=product.shop_id, inventory_item_id__in=item_ids)
            .values("inventory_item_id")
            .annotate(total=Sum("available"))
        )
        levels = {r["inventory_item_id"]: r["total"] or 0 for r in rows}
    quantities = [levels.get(v.inventory_item_id, v.inventory_quantity) for v in variants]
    known = [q for q in quantities if q is not None]
    return sum(known) if known else None
