"""Writes products to the configured index backend: whole documents, or one field group."""

from __future__ import annotations

from django.utils import timezone

from catalog.models import Product

from .backends import get_backend
from .documents import product_doc_id, product_document, product_inventory_fields


def product_index(product: Product) -> str:
    """Bring the product's index document in line with the stored product. Returns what it did."""
    backend = get_backend()
    if product.deleted_at is not None:
        backend.delete(product_doc_id(product))
        action = "deleted"
    else:
        backend.put(product_document(product))
        action = "written"
    Product.objects.filter(pk=product.pk).update(indexed_at=timezone.now())
    return action


def product_index_inventory(product: Product) -> bool:
    """Update only the inventory fields. A product not in the index yet is left alone (False):
    an inventory write must never create a half-empty document."""
    if product.deleted_at is not None:
        return False
    written = get_backend().update(product_doc_id(product), product_inventory_fields(product))
    if written:
        Product.objects.filter(pk=product.pk).update(indexed_at=timezone.now())
    return written


def products_reindex(product_ids: list[int]) -> int:
    """Write the documents of these products (after a backfill). Returns how many were written."""
    count = 0
    products = Product.objects.filter(pk__in=product_ids).select_related("shop").prefetch_related("variants")
    for product in products:
        product_index(product)
        count += 1
    return count
