"""Writes products to the index as conditional partial writes per field group.

A product's `version_vector` says what the stored truth is at; its `index_vector` what the index
has confirmed. Every component where the first is ahead is a pending write of that writer's field
group, sent with the component as its version: the index refuses anything older than what it
holds, so a slow worker or a replay can never roll a field back. Because pending writes live in
the database, a crash or a failed write loses nothing: the next attempt (a retried event, a
backfill, reconcile) sends them again.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from catalog.models import Product
from catalog.selectors import products_inventory_totals
from config.db import bulk_set

from .backends import get_backend
from .backends.base import IndexWrite, WriteOutcome, WriteResult
from .documents import (
    product_content_fields,
    product_doc_id,
    product_embedding_fields,
    product_inventory_fields,
    product_scoring_fields,
)

CONFIRMED = (WriteOutcome.APPLIED, WriteOutcome.STALE)  # stale: the index already holds newer


def pending_writes(product: Product, *, inventory_total: int | None | bool = False) -> list[IndexWrite]:
    """The writes that bring the product's document up to its version vector."""
    doc_id, vv, iv = product_doc_id(product), product.version_vector, product.index_vector
    shopify, inventory = vv.get("shopify", 0), vv.get("inventory", 0)
    if product.deleted_at is not None:
        if shopify > iv.get("shopify", 0):
            return [IndexWrite(doc_id, "shopify", shopify, delete=True)]
        return []
    writes = []
    if shopify > iv.get("shopify", 0):
        writes.append(IndexWrite(doc_id, "shopify", shopify, product_content_fields(product), create=True))
    if inventory > iv.get("inventory", 0):
        # Never creates: stock for a document that does not exist yet waits for its content.
        fields = product_inventory_fields(product, total=inventory_total)
        writes.append(IndexWrite(doc_id, "inventory", inventory, fields))
    # Derived groups never create a document either (MISSING until the content is written).
    for writer, group in (("embedding", product_embedding_fields), ("scoring", product_scoring_fields)):
        version = vv.get(writer, 0)
        if version > iv.get(writer, 0):
            writes.append(IndexWrite(doc_id, writer, version, group(product)))
    return writes


def products_sync_index(product_ids: list[int]) -> dict[int, WriteResult]:
    """Send the pending writes of these products in one backend call; record what the index
    confirmed. Returns the failed write of each product that has one (empty: all done).

    The products' rows stay locked while their writes are computed and sent, so a concurrent
    delete cannot be overtaken by an older content write of the same product.
    """
    if not product_ids:
        return {}
    with transaction.atomic():
        products = _locked_products(sorted(set(product_ids)))
        totals = products_inventory_totals([p.pk for p in products if _pending(p, "inventory")])
        planned = [
            (product, write)
            for product in products
            for write in pending_writes(product, inventory_total=totals.get(product.pk))
        ]
        results = get_backend().write([write for _, write in planned]) if planned else []
        return _record(planned, results)


def _locked_products(pks: list[int]) -> list[Product]:
    """Lock the products (only their rows: `of=self`, never the shop's), loading whole rows only
    where a content write is pending; inventory writes need just the vectors (the database sums
    the stock), and most writes are inventory writes."""
    light = list(
        Product.objects.select_for_update(of=("self",))
        .filter(pk__in=pks)
        .only("pk", "shop_id", "version_vector", "index_vector", "deleted_at")
        .order_by("pk")
    )
    _load_derived([p for p in light if p.deleted_at is None])
    content = [p.pk for p in light if p.deleted_at is None and _pending(p, "shopify")]
    if not content:
        return light
    full = {
        p.pk: p
        for p in Product.objects.filter(pk__in=content).select_related("shop").prefetch_related("variants")
    }
    return [full.get(p.pk, p) for p in light]


def _load_derived(products: list[Product]) -> None:
    """Fill in the vector and score of products with an embedding or scoring write pending, in
    one query (the light rows leave them out: most writes are stock writes)."""
    pending = {p.pk: p for p in products if _pending(p, "embedding") or _pending(p, "scoring")}
    if not pending:
        return
    derived = ("pk", "embedding", "embedding_model", "trend_score")
    for pk, embedding, model, score in Product.objects.filter(pk__in=pending).values_list(*derived):
        product = pending[pk]
        product.embedding, product.embedding_model, product.trend_score = embedding, model, score


def _pending(product: Product, writer: str) -> bool:
    return product.version_vector.get(writer, 0) > product.index_vector.get(writer, 0)


def products_reindex(product_ids: list[int]) -> int:
    """Write the pending groups of these products (after a backfill). Returns how many products
    the index now holds in their current version; failures are left pending for a retry."""
    failed = products_sync_index(product_ids)
    return len(set(product_ids)) - len(failed)


def _record(planned: list[tuple[Product, IndexWrite]], results: list[WriteResult]) -> dict[int, WriteResult]:
    failures: dict[int, WriteResult] = {}
    confirmed: dict[int, dict[str, int]] = defaultdict(dict)
    for (product, write), result in zip(planned, results, strict=True):
        if result.outcome in CONFIRMED or (write.delete and result.outcome == WriteOutcome.MISSING):
            # A delete that finds no document leaves the index as wanted: confirmed, not re-sent.
            confirmed[product.pk][write.writer] = write.version
        elif result.outcome != WriteOutcome.MISSING:  # missing: no document to write stock into
            failures.setdefault(product.pk, result)
    now = timezone.now()
    rows = []
    for product, _ in planned:
        versions = confirmed.pop(product.pk, None)
        if versions:
            merged = dict(product.index_vector)
            for writer, version in versions.items():
                merged[writer] = max(version, merged.get(writer, 0))
            product.index_vector, product.indexed_at = merged, now
            rows.append((product.pk, merged, now))
    bulk_set(Product, ["index_vector", "indexed_at"], rows)
    return failures
