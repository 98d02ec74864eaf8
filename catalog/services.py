"""The only code that writes the catalog: apply normalized Shopify data to stored products.

Every function decides from the stored truth whether incoming data is new, stale or the same,
so deliveries may arrive twice, late or out of order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import F

from .models import OrderLine, Product, Shop, Variant
from .normalize.fields import parse_datetime, parse_id, parse_int, parse_money, parse_optional_id, text
from .normalize.types import CanonicalProduct, NormalizationError
from .versioning import embed_text_hash, score_inputs_hash, search_hash, version_bump

APPLIED, STALE, NOOP = "applied", "stale", "no-op"


@dataclass(slots=True)
class ApplyResult:
    outcome: str
    product: Product | None = None
    reason: str = ""
    content_changed: bool = False
    inventory_changed: bool = False
    embed_changed: bool = False  # the embedding must be recomputed
    score_changed: bool = False  # the trend score must be recomputed
    products: list[Product] = field(default_factory=list)  # products touched by inventory


def product_apply(*, shop: Shop, data: CanonicalProduct, source: str) -> ApplyResult:
    """Create or update a product from normalized data, unless the stored one is newer.

    Stale: the stored product is deleted, or its updated_at is newer than the data's, or the data
    has no timestamp (a CSV export) while the stored product came with one.
    """
    with transaction.atomic():
        product = _product_for_update(shop, data)
        if product is not None:
            stale = _stale_reason(product, data)
            if stale:
                return ApplyResult(STALE, product, stale)
        new_hash = search_hash(data)
        content_changed = product is None or product.search_hash != new_hash
        created = product is None
        product = product or Product(shop=shop)
        inventory_changed = content_changed or _inventory_changed(product, data)
        if not content_changed and not inventory_changed:
            _touch(product, data, source)
            return ApplyResult(NOOP, product, "content and inventory unchanged")
        embed_hash, score_hash = embed_text_hash(data), score_inputs_hash(data)
        embed_changed = product.embed_text_hash != embed_hash
        score_changed = product.score_inputs_hash != score_hash
        product.embed_text_hash, product.score_inputs_hash = embed_hash, score_hash
        _assign(product, data, new_hash, source, content_changed, inventory_changed)
        product.save()
        _replace_variants(product, data, created=created)
        return ApplyResult(
            APPLIED,
            product,
            content_changed=content_changed,
            inventory_changed=inventory_changed,
            embed_changed=embed_changed,
            score_changed=score_changed,
        )


def product_delete(*, shop: Shop, shopify_id: int, deleted_at: datetime) -> ApplyResult:
    """Tombstone the product: it leaves search and later stale updates cannot resurrect it."""
    with transaction.atomic():
        product = Product.objects.select_for_update().filter(shop=shop, shopify_id=shopify_id).first()
        if product is None:
            # Deliveries arrive out of order: the product's create may still be on its way. A
            # tombstone makes that late create stale instead of resurrecting the product.
            Product.objects.bulk_create(
                [
                    Product(
                        shop=shop,
                        shopify_id=shopify_id,
                        title="",
                        deleted_at=deleted_at,
                        status=Product.Status.ARCHIVED,
                        last_updated_source="webhook",
                    )
                ],
                ignore_conflicts=True,
            )
            return ApplyResult(NOOP, None, f"no product {shopify_id} in {shop.domain}; remembered as deleted")
        if product.deleted_at is not None:
            return ApplyResult(NOOP, product, "already deleted")
        product.deleted_at = deleted_at
        product.last_updated_source = "webhook"
        version_bump(product, "shopify")  # the delete is the newest content write
        product.save(update_fields=["deleted_at", "last_updated_source", "version_vector", "modified_at"])
        return ApplyResult(APPLIED, product, content_changed=True)


def order_record(*, shop: Shop, payload: dict) -> ApplyResult:
    """Keep an order's line items per product: the sales signal for trend scoring."""
    order_id = parse_id(payload.get("id"), name="order id")
    ordered_at = parse_datetime(payload.get("created_at"), name="created_at")
    lines = []
    for index, item in enumerate(payload.get("line_items") or [], start=1):
        if not isinstance(item, dict):
            raise NormalizationError(f"line_items[{index}] must be a JSON object")
        lines.append(
            OrderLine(
                shop=shop,
                order_id=order_id,
                line_item_id=parse_id(item.get("id"), name=f"line_items[{index}].id"),
                product_shopify_id=parse_optional_id(item.get("product_id"), name="product_id"),
                variant_shopify_id=parse_optional_id(item.get("variant_id"), name="variant_id"),
                sku=text(item.get("sku")),
                title=text(item.get("title"))[:512],
                quantity=parse_int(item.get("quantity"), name=f"line_items[{index}].quantity") or 0,
                price=parse_money(item.get("price"), name=f"line_items[{index}].price"),
                ordered_at=ordered_at,
            )
        )
    existing = set(
        OrderLine.objects.filter(
            shop=shop, line_item_id__in=[line.line_item_id for line in lines]
        ).values_list("line_item_id", flat=True)
    )
    new = [line for line in lines if line.line_item_id not in existing]
    OrderLine.objects.bulk_create(new, ignore_conflicts=True)
    if not new:
        return ApplyResult(NOOP, reason=f"order {order_id} already recorded")
    sold = {line.product_shopify_id for line in new if line.product_shopify_id is not None}
    products = list(Product.objects.live().filter(shop=shop, shopify_id__in=sold).only("pk"))
    reason = f"{len(new)} line item{'s' if len(new) != 1 else ''}"
    return ApplyResult(APPLIED, reason=reason, products=products)


def _product_for_update(shop: Shop, data: CanonicalProduct) -> Product | None:
    """The stored product this data describes: by id, else by handle (CSV imports have no id)."""
    products = Product.objects.select_for_update().filter(shop=shop)
    if data.shopify_id is not None:
        found = products.filter(shopify_id=data.shopify_id).first()
        if found is None and data.handle:
            # A product imported from a CSV export (no id) is linked by the first webhook for it.
            found = products.filter(
                shopify_id__isnull=True, handle=data.handle, deleted_at__isnull=True
            ).first()
        return found
    if not data.handle:
        raise NormalizationError("a product without an id needs a handle")
    # The live product with this handle; else the deleted one, so that importing an export again
    # (it still lists a product deleted since) finds its tombstone and cannot bring it back.
    return (
        products.filter(handle=data.handle)
        .order_by(F("deleted_at").asc(nulls_first=True), F("shopify_updated_at").desc(nulls_last=True))
        .first()
    )


def _stale_reason(product: Product, data: CanonicalProduct) -> str:
    if product.deleted_at is not None:
        reason = f"product was deleted at {product.deleted_at.isoformat()}"
        if data.shopify_id is None:
            # Matched by handle: an export without ids cannot tell a product re-created in Shopify
            # under the same handle from the deleted one, so it is not brought back on a guess.
            reason += (
                f" (matched by handle {data.handle!r}; if it was re-created in Shopify, import an "
                "export with ids: Admin API JSON or bulk JSONL)"
            )
        return reason
    stored = product.shopify_updated_at
    if stored is None:
        return ""
    if data.updated_at is None:
        return f"data has no updated_at; stored product is from {stored.isoformat()}"
    if data.updated_at < stored:
        return f"updated_at {data.updated_at.isoformat()} is older than stored {stored.isoformat()}"
    return ""


def _inventory_changed(product: Product, data: CanonicalProduct) -> bool:
    stored = [v.inventory_quantity for v in product.variants.all()] if product.pk else []
    return stored != [v.inventory_quantity for v in data.variants]


def _touch(product: Product, data: CanonicalProduct, source: str) -> None:
    """Same content: only move the version forward so older payloads count as stale."""
    if data.updated_at and (
        product.shopify_updated_at is None or data.updated_at > product.shopify_updated_at
    ):
        product.shopify_updated_at = data.updated_at
        product.last_updated_source = source
        product.update_type = Product.UpdateType.AUTO  # updated_at moved, content did not
        product.save(
            update_fields=[
                "shopify_updated_at",
                "last_updated_source",
                "update_type",
                "modified_at",
            ]
        )


def _assign(
    product: Product,
    data: CanonicalProduct,
    new_hash: str,
    source: str,
    content_changed: bool,
    inventory_changed: bool,
) -> None:
    for name in (
        "handle",
        "title",
        "body_html",
        "vendor",
        "product_type",
        "category",
        "tags",
        "status",
        "options",
        "images",
        "metafields",
        "published_at",
    ):
        setattr(product, name, getattr(data, name))
    if data.shopify_id is not None:
        product.shopify_id = data.shopify_id
    product.shopify_created_at = data.created_at or product.shopify_created_at
    product.shopify_updated_at = data.updated_at or product.shopify_updated_at
    product.search_hash = new_hash
    if content_changed:
        version_bump(product, "shopify")
    if inventory_changed:
        version_bump(product, "inventory")
    product.last_updated_source = source
    product.update_type = Product.UpdateType.MANUAL if content_changed else Product.UpdateType.AUTO


# The variant columns a product payload sets, in the order _variant_row gives their values.
VARIANT_COLUMNS = (
    "shopify_id",
    "title",
    "sku",
    "barcode",
    "price",
    "compare_at_price",
    "position",
    "option_values",
    "inventory_item_id",
    "inventory_quantity",
    "inventory_policy",
)


def _variant_row(v) -> tuple:
    return (
        v.shopify_id,
        v.title[:512],
        v.sku[:255],
        v.barcode[:255],
        v.price,
        v.compare_at_price,
        v.position,
        v.option_values,
        v.inventory_item_id,
        v.inventory_quantity,
        v.inventory_policy[:16],
    )


def _replace_variants(product: Product, data: CanonicalProduct, *, created: bool) -> None:
    """Store the data's variants. Variants always arrive complete, so a change replaces them all;
    most content edits (title, description, tags) leave them as they were, and then one read
    saves the delete and the insert (bench/drain.py's content updates)."""
    rows = [_variant_row(v) for v in data.variants]
    if not created:
        stored = Variant.objects.filter(product=product).order_by("pk").values_list(*VARIANT_COLUMNS)
        if list(stored) == rows:
            return
        Variant.objects.filter(product=product).delete()
    Variant.objects.bulk_create(
        Variant(product=product, shop_id=product.shop_id, **dict(zip(VARIANT_COLUMNS, row, strict=True)))
        for row in rows
    )
