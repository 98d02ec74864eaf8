"""Reconciliation: compare the stored truth with the index, per document, and repair drift.

Shopify recommends periodic reconciliation (webhooks can be missed); for us it also proves the
index converged. A document is expected for every live product; its content hash must match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db.models import F

from catalog.models import Product, Shop
from search.backends import get_backend
from search.backends.base import WRITERS, version_field
from search.documents import product_document

# Products are read in keyset batches of this size: bounded memory on any catalog.
BATCH_SIZE = 500


@dataclass
class ReconcileReport:
    shop: str
    products: int = 0
    documents: int = 0
    missing: list[str] = field(default_factory=list)  # live product, no document
    extra: list[str] = field(default_factory=list)  # document without a live product
    differing: list[str] = field(default_factory=list)  # both, different content
    repaired: int = 0

    @property
    def drift(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.differing)


def reconcile_shop(*, shop: Shop, repair: bool = False) -> ReconcileReport:
    """Compare (and with `repair`, rewrite or remove) every document of the shop."""
    backend = get_backend()
    report = ReconcileReport(shop=shop.domain)
    expected: dict[str, tuple[str, dict[str, Any]]] = {}
    for document in _expected_documents(shop):
        expected[document["id"]] = (_digest(document), document)
    report.products = len(expected)
    seen: set[str] = set()
    for document in backend.documents(shop=shop.domain):
        report.documents += 1
        doc_id = document["id"]
        seen.add(doc_id)
        if doc_id not in expected:
            report.extra.append(doc_id)
        elif expected[doc_id][0] != _digest(document):
            report.differing.append(doc_id)
    report.missing = [doc_id for doc_id in expected if doc_id not in seen]
    if repair:
        for doc_id in report.missing + report.differing:
            backend.put(expected[doc_id][1])
            # The index now holds exactly the stored version: nothing of it is pending any more.
            Product.objects.filter(pk=int(doc_id)).update(index_vector=F("version_vector"))
        for doc_id in report.extra:
            backend.delete(doc_id)
        report.repaired = report.drift
    return report


def _expected_documents(shop: Shop) -> Iterator[dict[str, Any]]:
    last = 0
    while True:
        batch = list(
            Product.objects.live()
            .filter(shop=shop, pk__gt=last)
            .select_related("shop")
            .prefetch_related("variants")
            .order_by("pk")[:BATCH_SIZE]
        )
        for product in batch:
            vector = {
                version_field(w): product.version_vector[w] for w in WRITERS if w in product.version_vector
            }
            yield {**product_document(product), **vector}
        if len(batch) < BATCH_SIZE:
            return
        last = batch[-1].pk


def _digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()
