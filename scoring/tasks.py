"""django-q2 tasks of scoring: thin wrappers that call one service. Safe to run twice."""

from __future__ import annotations

from catalog.models import Product

from .services import products_rescore, products_rescore_requested


def rescore_requested() -> dict[str, int]:
    """On change (queued): products whose scoring inputs changed or that got orders."""
    return products_rescore_requested().as_dict()


def rescore_changed() -> dict[str, int]:
    """Daily at 02:00 UTC: every live product, rescored only where its signals changed."""
    return products_rescore(Product.objects.all()).as_dict()


def rescore_all() -> dict[str, int]:
    """Weekly: a full recompute, changed or not."""
    return products_rescore(Product.objects.all(), force=True).as_dict()
