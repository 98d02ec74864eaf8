"""Writes products to the configured index backend as conditional partial writes per field group.

Each group is versioned by its writer's component of the product's version vector, so a stale
write (an older worker, a replay) is refused by the index itself and never rolls a field back.
"""

from __future__ import annotations

from django.utils import timezone

from catalog.models import Product

from .backends import get_backend
from .backends.base import IndexError_, IndexWrite, WriteOutcome, WriteResult
from .documents import product_content_fields, product_doc_id, product_inventory_fields


def product_writes(product: Product, *, content: bool = True, inventory: bool = True) -> list[IndexWrite]:
    """The index writes that bring the product's document in line with the stored product."""
    doc_id, vector = product_doc_id(product), product.version_vector
    if product.deleted_at is not None:
        return [IndexWrite(doc_id, "shopify", vector.get("shopify", 0), delete=True)]
    writes = []
    if content:
        fields = product_content_fields(product)
        writes.append(IndexWrite(doc_id, "shopify", vector.get("shopify", 0), fields, create=True))
    if inventory:
        # Never creates: stock for a document that does not exist yet waits for its content.
        writes.append(
            IndexWrite(doc_id, "inventory", vector.get("inventory", 0), product_inventory_fields(product))
        )
    return writes


def index_apply(writes: list[IndexWrite]) -> list[WriteResult]:
    """Send writes to the index; raise on failures the pipeline must retry or dead-letter."""
    results = get_backend().write(writes) if writes else []
    for result in results:
        if result.outcome == WriteOutcome.BLOCKED:
            raise IndexError_(result.error, retryable=True, blocked=True)
        if result.outcome in (WriteOutcome.RETRYABLE, WriteOutcome.PERMANENT):
            raise IndexError_(result.error, retryable=result.outcome == WriteOutcome.RETRYABLE)
    return results


def product_index(product: Product) -> list[WriteResult]:
    """Write the product's content and inventory groups (or its delete)."""
    results = index_apply(product_writes(product))
    _mark_indexed(product, results)
    return results


def product_index_inventory(product: Product) -> bool:
    """Write only the inventory group. False when the document does not exist yet."""
    if product.deleted_at is not None:
        return False
    results = index_apply(product_writes(product, content=False))
    _mark_indexed(product, results)
    return any(r.outcome == WriteOutcome.APPLIED for r in results)


def products_reindex(product_ids: list[int]) -> int:
    """Write the documents of these products (after a backfill). Returns how many were written."""
    count = 0
    products = Product.objects.filter(pk__in=product_ids).select_related("shop").prefetch_related("variants")
    for product in products:
        product_index(product)
        count += 1
    return count


def _mark_indexed(product: Product, results: list[WriteResult]) -> None:
    if any(r.outcome == WriteOutcome.APPLIED for r in results):
        Product.objects.filter(pk=product.pk).update(indexed_at=timezone.now())
