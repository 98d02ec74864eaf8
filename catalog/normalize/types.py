"""The canonical product: one shape that every Shopify source is normalized into.

Webhook JSON, REST objects, bulk-operation JSONL and CSV exports all become a `CanonicalProduct`;
services compare and store only this shape, so a new source never touches the sync logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

PRODUCT_STATUSES = ("active", "draft", "archived")


class NormalizationError(ValueError):
    """The input is not a product we can store; the message says which field and why."""


@dataclass(slots=True)
class CanonicalVariant:
    shopify_id: int | None
    title: str
    sku: str
    barcode: str
    price: Decimal | None
    compare_at_price: Decimal | None
    position: int
    option_values: list[str] = field(default_factory=list)
    inventory_item_id: int | None = None
    inventory_quantity: int | None = None
    inventory_policy: str = ""


@dataclass(slots=True)
class CanonicalProduct:
    shopify_id: int | None  # absent in CSV exports: those products are keyed by handle
    handle: str
    title: str
    body_html: str
    vendor: str
    product_type: str
    tags: list[str]
    status: str
    published_at: datetime | None
    created_at: datetime | None
    updated_at: datetime | None  # None for sources without a timestamp (CSV exports)
    options: list[dict] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    variants: list[CanonicalVariant] = field(default_factory=list)
    metafields: dict[str, str] = field(default_factory=dict)
    category: str = ""
