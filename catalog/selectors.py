"""Reads over the catalog."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Case, Exists, F, IntegerField, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce

from .models import InventoryLevel, Product, Variant


def product_inventory_total(product: Product) -> int | None:
    """Stock over all locations: per-location levels where we have them, else the payload totals.

    A variant whose item has any InventoryLevel row counts those levels (they are newer and per
    location); otherwise its `inventory_quantity` from the product payload counts. None when no
    variant says anything about its stock.
    """
    return products_inventory_totals([product.pk])[product.pk]


def products_inventory_totals(product_ids: Iterable[int]) -> dict[int, int | None]:
    """`product_inventory_total` of many products, summed by the database in one query.

    The drain computes this for every product of every inventory batch: loading their variants
    and levels as objects to add them up in Python cost more than the rest of the write.
    """
    product_ids = list(product_ids)
    totals: dict[int, int | None] = dict.fromkeys(product_ids)
    if not product_ids:
        return totals
    levels = InventoryLevel.objects.filter(
        shop_id=OuterRef("shop_id"), inventory_item_id=OuterRef("inventory_item_id")
    )
    level_sum = levels.order_by().values("inventory_item_id").annotate(total=Sum("available")).values("total")
    stock = Case(
        When(Exists(levels), then=Coalesce(Subquery(level_sum), Value(0))),
        default=F("inventory_quantity"),
        output_field=IntegerField(),
    )
    rows = (
        Variant.objects.filter(product_id__in=product_ids)
        .values("product_id")
        .annotate(total=Sum(stock))
        .values_list("product_id", "total")
    )
    totals.update(rows)
    return totals
