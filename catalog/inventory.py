"""Inventory levels: stock per (inventory item, location), ordered by the level's own updated_at.

Applied in batches: a drain batch of 500 inventory deliveries costs a handful of queries, not a
handful per delivery, and gives the same outcomes as applying them one by one in arrival order.
Levels are kept even when no variant has the item yet (the product's create may still be on its
way): they count as soon as the product arrives.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from config.db import bulk_set

from .models import InventoryLevel, Product, Shop, Variant
from .normalize.fields import parse_datetime, parse_id, parse_int
from .services import APPLIED, NOOP, STALE, ApplyResult
from .versioning import version_bump


@dataclass(slots=True)
class _Level:
    """A stored level as the batch sees it (pk None: created by this batch)."""

    pk: int | None
    available: int | None
    shopify_updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class LevelChange:
    shop_id: int
    item_id: int
    location_id: int
    available: int | None
    updated_at: datetime | None

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.shop_id, self.item_id, self.location_id)


def level_change(*, shop: Shop, payload: dict) -> LevelChange:
    """An inventory_levels/update body as a change (NormalizationError if it is not one)."""
    return LevelChange(
        shop_id=shop.pk,
        item_id=parse_id(payload.get("inventory_item_id"), name="inventory_item_id"),
        location_id=parse_id(payload.get("location_id"), name="location_id"),
        available=parse_int(payload.get("available"), name="available"),
        updated_at=parse_datetime(payload.get("updated_at"), name="updated_at"),
    )


def inventory_levels_apply(changes: list[LevelChange]) -> list[ApplyResult]:
    """Apply level changes in order; one result per change. Products whose stock moved get their
    `inventory` version bumped (their index write is then pending)."""
    with transaction.atomic():
        levels = _locked_levels(changes)
        created: dict[tuple, _Level] = {}
        changed: dict[tuple, _Level] = {}
        results = [_apply_one(change, levels, created, changed) for change in changes]
        InventoryLevel.objects.bulk_create(
            InventoryLevel(
                shop_id=shop_id,
                inventory_item_id=item_id,
                location_id=location_id,
                available=level.available,
                shopify_updated_at=level.shopify_updated_at,
            )
            # In key order, as the locks: two batches creating the same levels never deadlock.
            for (shop_id, item_id, location_id), level in sorted(created.items(), key=lambda kv: kv[0])
        )
        bulk_set(
            InventoryLevel,
            ["available", "shopify_updated_at"],
            [
                (lv.pk, lv.available, lv.shopify_updated_at)
                for key, lv in changed.items()
                if key not in created
            ],
        )
        applied = {
            (c.shop_id, c.item_id) for c, r in zip(changes, results, strict=True) if r.outcome == APPLIED
        }
        products_by_item = _products_holding({(c.shop_id, c.item_id) for c in changes}, bump=applied)
    for change, result in zip(changes, results, strict=True):
        # Stale and no-op changes name their products too: if an earlier attempt stored the level
        # but failed writing the index, this is when the pending write goes out.
        result.products = products_by_item.get((change.shop_id, change.item_id), [])
        if result.outcome == APPLIED and not result.products:
            result.reason = (
                f"stored; no product has inventory item {change.item_id} yet, counted once it arrives"
            )
    return results


def _locked_levels(changes: list[LevelChange]) -> dict[tuple, _Level]:
    """The stored levels of these changes, locked. Read as tuples, not through the ORM's model
    construction: a batch reads hundreds of levels, and only a few fields of each matter."""
    keys = {change.key for change in changes}
    rows = (
        InventoryLevel.objects.select_for_update()
        .filter(
            shop_id__in={k[0] for k in keys},
            inventory_item_id__in={k[1] for k in keys},
            location_id__in={k[2] for k in keys},
        )
        # In key order, as every worker takes them: two batches sharing levels wait, never deadlock.
        .order_by("pk")
        .values_list("pk", "shop_id", "inventory_item_id", "location_id", "available", "shopify_updated_at")
    )
    return {
        (shop_id, item_id, location_id): _Level(pk, available, updated_at)
        for pk, shop_id, item_id, location_id, available, updated_at in rows
        if (shop_id, item_id, location_id) in keys
    }


def _apply_one(change: LevelChange, levels: dict, created: dict, changed: dict) -> ApplyResult:
    level = levels.get(change.key)
    if level is None:
        levels[change.key] = created[change.key] = _Level(None, change.available, change.updated_at)
        return ApplyResult(APPLIED, inventory_changed=True)
    stored = level.shopify_updated_at
    if stored and change.updated_at and change.updated_at < stored:
        return ApplyResult(STALE, reason=f"level updated at {stored.isoformat()}")
    if level.available == change.available and stored == change.updated_at:
        return ApplyResult(NOOP, reason="level unchanged")
    level.available, level.shopify_updated_at = change.available, change.updated_at
    changed[change.key] = level
    return ApplyResult(APPLIED, inventory_changed=True)


def _products_holding(
    items: set[tuple[int, int]], *, bump: set[tuple[int, int]]
) -> dict[tuple[int, int], list[Product]]:
    """The live products holding each item; those holding an item in `bump` get their inventory
    version bumped, once each."""
    if not items:
        return {}
    variants = Variant.objects.filter(
        shop_id__in={s for s, _ in items}, inventory_item_id__in={i for _, i in items}
    ).values_list("shop_id", "inventory_item_id", "product_id")
    product_ids: dict[tuple[int, int], set[int]] = defaultdict(set)
    for shop_id, item_id, product_id in variants:
        if (shop_id, item_id) in items:
            product_ids[(shop_id, item_id)].add(product_id)
    wanted = set().union(*product_ids.values()) if product_ids else set()
    products = {
        # Only the vector: product rows are wide (descriptions) and this runs for every batch.
        p.pk: p
        for p in Product.objects.live()
        .select_for_update()
        .filter(pk__in=wanted)
        .only("pk", "version_vector")
        .order_by("pk")
    }
    bumped = {pk for item in bump for pk in product_ids.get(item, ()) if pk in products}
    for pk in bumped:
        version_bump(products[pk], "inventory")
    bulk_set(Product, ["version_vector"], [(pk, products[pk].version_vector) for pk in sorted(bumped)])
    return {item: [products[pk] for pk in sorted(pks) if pk in products] for item, pks in product_ids.items()}
