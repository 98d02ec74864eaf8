"""Content hashes and version-vector components: how we tell new from old and changed from same."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import orjson

from .normalize.types import CanonicalProduct

if TYPE_CHECKING:
    from .models import Product


def _digest(value: object) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def search_hash(data: CanonicalProduct) -> str:
    """Hash of everything search shows or filters on. Inventory is deliberately left out: stock
    moves on every order and must not count as a content change."""
    return _digest(
        {
            "handle": data.handle,
            "title": data.title,
            "body_html": data.body_html,
            "vendor": data.vendor,
            "product_type": data.product_type,
            "category": data.category,
            "tags": data.tags,
            "status": data.status,
            "published_at": data.published_at,
            "options": data.options,
            "images": data.images,
            "metafields": data.metafields,
            "variants": [
                [
                    v.shopify_id,
                    v.title,
                    v.sku,
                    v.barcode,
                    v.price,
                    v.compare_at_price,
                    v.position,
                    v.option_values,
                    v.inventory_item_id,
                    v.inventory_policy,
                ]
                for v in data.variants
            ],
        }
    )


def embed_text(data: CanonicalProduct | Product) -> str:
    """The text an embedding is computed from: what a shopper's words should match in meaning.

    Works on a stored Product too (same attribute names), so the embedding worker hashes exactly
    what `product_apply` hashed."""
    from .normalize.fields import html_to_text

    parts = [data.title, data.product_type, data.vendor, ", ".join(data.tags), html_to_text(data.body_html)]
    return "\n".join(part for part in parts if part)


def embed_text_hash(data: CanonicalProduct | Product) -> str:
    return hashlib.sha256(embed_text(data).encode("utf-8")).hexdigest()


def score_inputs_hash(data: CanonicalProduct) -> str:
    """Hash of the product's own inputs to its trend score (sales signals are hashed by scoring)."""
    return _digest(
        {
            "product_type": data.product_type,
            "status": data.status,
            "published_at": data.published_at,
            "created_at": data.created_at,
            "prices": sorted(str(v.price) for v in data.variants if v.price is not None),
        }
    )


def version_bump(product, writer: str) -> int:
    """Advance one component of the product's version vector (call under the product's row lock).

    Components are counters: the database orders writes per product (row locks and the stale
    checks), so a counter bumped in that order is exactly "newer" for the index's conditions.
    """
    version = int(product.version_vector.get(writer, 0)) + 1
    product.version_vector = {**product.version_vector, writer: version}
    return version
