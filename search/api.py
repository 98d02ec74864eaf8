"""Queries against the index: the one place the search command (and later the HTTP API) ask.

For `semantic` and `hybrid` the query text is embedded here (backends only receive vectors); the
encoder then loads on first use in this process, so a web process that never serves such a query
never loads the model.
"""

from __future__ import annotations

import logging

from django.conf import settings

from .backends import get_backend
from .backends.base import SEARCH_MODES, SEARCHABLE_STATUSES, SearchHit

logger = logging.getLogger("shopsync.search")


def search_products(
    query: str,
    *,
    shop: str | None = None,
    limit: int = 10,
    statuses: tuple[str, ...] = SEARCHABLE_STATUSES,
    mode: str = "bm25",
    semantic_weight: float | None = None,
    trend_boost: float | None = None,
    log: bool = True,
) -> list[SearchHit]:
    """Ranked products matching `query` (only active ones unless `statuses` says otherwise).

    `semantic_weight` and `trend_boost` default to SEARCH_SEMANTIC_WEIGHT and, for hybrid only,
    SEARCH_TREND_BOOST (bm25 and semantic rank without a trend boost unless asked). Each search
    is logged (the search-demand signal of trend scoring) unless `log` is off.
    """
    if mode not in SEARCH_MODES:
        raise ValueError(f"unknown search mode {mode!r}; choose one of {', '.join(SEARCH_MODES)}")
    query_vector = None
    if mode != "bm25":
        from .embeddings import embed_query

        query_vector = embed_query(query)
    if trend_boost is None:
        trend_boost = settings.SEARCH_TREND_BOOST if mode == "hybrid" else 0.0
    hits = get_backend().search(
        query,
        shop=shop,
        statuses=statuses,
        limit=limit,
        mode=mode,
        query_vector=query_vector,
        semantic_weight=settings.SEARCH_SEMANTIC_WEIGHT if semantic_weight is None else semantic_weight,
        trend_boost=trend_boost,
    )
    if log:
        from scoring.services import search_query_record

        try:
            search_query_record(shop=shop, query=query, mode=mode, doc_ids=[h.id for h in hits])
        except Exception:  # a failed log line must not fail the search
            logger.exception("search query log failed")
    return hits
