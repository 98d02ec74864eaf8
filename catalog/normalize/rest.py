"""REST-shaped product objects: webhook payloads (API 2020 to 2026-04) and Admin REST responses.

Version drift handled here: `status` is missing before 2021 (treated as active), `body_html` may
be null, `tags` is one comma-separated string, variants lost `grams`/`weight`/
`inventory_management` in 2026-04, and `sku` may be "" or null.
"""

from __future__ import annotations

from datetime import UTC

from .fields import (
    parse_datetime,
    parse_id,
    parse_int,
    parse_money,
    parse_optional_id,
    parse_status,
    parse_tags,
    text,
)
from .types import CanonicalProduct, CanonicalVariant, NormalizationError


def product_from_rest(payload: object) -> CanonicalProduct:
    """Normalize one REST product object (a products/create or products/update body)."""
    if not isinstance(payload, dict):
        raise NormalizationError(f"a product must be a JSON object, got {type(payload).__name__}")
    if "id" not in payload:
        raise NormalizationError("product has no 'id'")
    title = text(payload.get("title"))
    if not title:
        raise NormalizationError("product has no 'title'")
    variants = payload.get("variants") or []
    if not isinstance(variants, list):
        raise NormalizationError("'variants' must be a list")
    return CanonicalProduct(
        shopify_id=parse_id(payload["id"]),
        handle=text(payload.get("handle")),
        title=title,
        body_html=payload.get("body_html") or "",
        vendor=text(payload.get("vendor")),
        product_type=text(payload.get("product_type")),
        tags=parse_tags(payload.get("tags")),
        status=parse_status(payload.get("status")),
        published_at=parse_datetime(payload.get("published_at"), name="published_at"),
        created_at=parse_datetime(payload.get("created_at"), name="created_at"),
        updated_at=parse_datetime(payload.get("updated_at"), name="updated_at"),
        options=[_option(o) for o in payload.get("options") or [] if isinstance(o, dict)],
        images=[
            text(i.get("src")) for i in payload.get("images") or [] if isinstance(i, dict) and i.get("src")
        ],
        variants=[_variant(v, index) for index, v in enumerate(variants, start=1)],
        category=_category(payload.get("category")),
    )


def _variant(raw: object, index: int) -> CanonicalVariant:
    if not isinstance(raw, dict):
        raise NormalizationError(f"variant {index} must be a JSON object")
    options = [
        text(raw.get(key)) for key in ("option1", "option2", "option3") if raw.get(key) not in (None, "")
    ]
    return CanonicalVariant(
        shopify_id=parse_optional_id(raw.get("id"), name=f"variants[{index}].id"),
        title=text(raw.get("title")),
        sku=text(raw.get("sku")),
        barcode=text(raw.get("barcode")),
        price=parse_money(raw.get("price"), name=f"variants[{index}].price"),
        compare_at_price=parse_money(raw.get("compare_at_price"), name=f"variants[{index}].compare_at_price"),
        position=parse_int(raw.get("position"), name=f"variants[{index}].position") or index,
        option_values=options,
        inventory_item_id=parse_optional_id(
            raw.get("inventory_item_id"), name=f"variants[{index}].inventory_item_id"
        ),
        inventory_quantity=parse_int(
            raw.get("inventory_quantity"), name=f"variants[{index}].inventory_quantity"
        ),
        inventory_policy=text(raw.get("inventory_policy")),
    )


def _option(raw: dict) -> dict:
    return {"name": text(raw.get("name")), "values": [text(v) for v in raw.get("values") or []]}


def _category(raw: object) -> str:
    if isinstance(raw, dict):
        return text(raw.get("full_name") or raw.get("name"))
    return text(raw)


def product_from_rest_timestamp(payload: dict) -> str:
    """A sortable form of a product payload's updated_at ("" when absent: oldest)."""
    updated_at = parse_datetime(payload.get("updated_at"), name="updated_at")
    return updated_at.astimezone(UTC).isoformat() if updated_at else ""
