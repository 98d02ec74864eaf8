"""Queries against the index: the one place the search command (and later the HTTP API) ask."""

from __future__ import annotations

from .backends import get_backend
from .backends.base import SEARCHABLE_STATUSES, SearchHit


def search_products(
    query: str, *, shop: str | None = None, limit: int = 10, statuses: tuple[str, ...] = SEARCHABLE_STATUSES
) -> list[SearchHit]:
    """Ranked products matching `query` (only active ones unless `statuses` says otherwise)."""
    return get_backend().search(query, shop=shop, statuses=statuses, limit=limit)
