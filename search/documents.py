"""The index document of a product: the one projection every backend stores.

Field groups say which writer owns which fields (content from Shopify, inventory, the embedding,
the trend score); partial updates write one group and leave the others alone.
"""

from __future__ import annotations

from typing import Any

from catalog.models import Product
from catalog.normalize.fields import html_to_text
from catalog.selectors import product_inventory_total

from .fields import TEXT_WEIGHTS, writer_fields

CONTENT_FIELDS = writer_fields("shopify")
INVENTORY_FIELDS = writer_fields("inventory")
EMBEDDING_FIELDS = writer_fields("embedding")
SCORING_FIELDS = writer_fields("scoring")
TEXT_FIELDS = tuple(TEXT_WEIGHTS)


def product_doc_id(product: Product) -> str:
    return str(product.pk)


def product_content_fields(product: Product) -> dict[str, Any]:
    prices = [v.price for v in product.variants.all() if v.price is not None]
    return {
        "shop": product.shop.domain,
        "shopify_id": product.shopify_id,
        "handle": product.handle,
        "title": product.title,
        "description": html_to_text(product.body_html),
        "vendor": product.vendor,
        "product_type": product.product_type,
        "tags": list(product.tags),
        "status": product.status,
        "price_min": float(min(prices)) if prices else None,
        "price_max": float(max(prices)) if prices else None,
    }


def product_inventory_fields(product: Product, *, total: int | None | bool = False) -> dict[str, Any]:
    """The inventory group; pass `total` when it was computed for many products at once."""
    return {"inventory_total": product_inventory_total(product) if total is False else total}


def product_embedding_fields(product: Product) -> dict[str, Any]:
    from .embeddings import vector_from_bytes  # numpy only where vectors are handled

    return {"embedding": vector_from_bytes(product.embedding), "embedding_model": product.embedding_model}


def product_scoring_fields(product: Product) -> dict[str, Any]:
    return {"trend_score": product.trend_score}


def product_document(product: Product) -> dict[str, Any]:
    """The whole document; the embedding and scoring groups only once they were computed (the
    index holds them only from their first write on)."""
    vv = product.version_vector
    return {
        "id": product_doc_id(product),
        **product_content_fields(product),
        **product_inventory_fields(product),
        **(product_embedding_fields(product) if vv.get("embedding") else {}),
        **(product_scoring_fields(product) if vv.get("scoring") else {}),
    }
