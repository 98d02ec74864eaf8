"""Reads over trend scores (the admin console and dashboards ask here)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, Q, QuerySet

from .models import TrendScore


def llm_fallback_stats(since: datetime) -> dict[str, int]:
    """Scores produced since `since`, and how many of them fell back from llm to local."""
    totals = TrendScore.objects.filter(created_at__gte=since).aggregate(
        scored=Count("pk"), fallbacks=Count("pk", filter=Q(fallback=True))
    )
    return {"scored": totals["scored"], "fallbacks": totals["fallbacks"]}


def product_score_history(*, product_id: int, limit: int = 50) -> QuerySet[TrendScore]:
    """A product's stored scores, newest first (its activity timeline)."""
    return TrendScore.objects.filter(product_id=product_id).order_by("-created_at", "-pk")[:limit]
