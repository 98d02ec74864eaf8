"""Reads behind the admin dashboard: backlog, throughput, freshness, outcomes, dead letters,
index health and LLM fallbacks, each limited to the shops the viewer may see.

Every figure is one aggregate query (no per-row Python over the event table), so the page stays
fast at 100,000 events: see bench/dashboard.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from catalog.models import Product
from search.backends import get_backend
from search.backends.base import IndexError_

from .models import DeadLetter, IndexHealth, SyncRun, WebhookEvent
from .product_status import products_behind_index

THROUGHPUT_HOURS = 3  # the throughput chart: one bar per minute over this many hours
WINDOW_HOURS = 24  # freshness, outcomes and the LLM fallback rate cover this window
Status, Outcome = WebhookEvent.Status, WebhookEvent.Outcome
# Postgres: outcomes and freshness of the window's finished events in one index-only scan.
# Lags are sorted as doubles (date_part), which is about twice as fast as numerics or intervals.
FINISHED_SELECT = (
    "SELECT count(*) FILTER (WHERE outcome = 'applied'), count(*) FILTER (WHERE outcome = 'stale'), "
    "count(*) FILTER (WHERE outcome = 'no-op'), count(*) FILTER (WHERE outcome = 'failed'), "
    "count(*) FILTER (WHERE outcome = 'skipped'), "
    "percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP "
    "(ORDER BY date_part('epoch', processed_at - coalesce(triggered_at, received_at))) "
    "FILTER (WHERE status = 'done' AND outcome = 'applied')"
)
FINISHED_WHERE = "processed_at IS NOT NULL AND received_at >= %s"


@dataclass
class DashboardStats:
    now: datetime
    backlog: dict[str, Any] = field(default_factory=dict)
    throughput: list[dict[str, Any]] = field(default_factory=list)  # per minute: received, processed
    freshness: dict[str, float | None] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    dlq: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)
    runs: list[SyncRun] = field(default_factory=list)


def dashboard_stats(*, shop_ids: list[int] | None, now: datetime | None = None) -> DashboardStats:
    now = now or timezone.now()
    events = _scoped(WebhookEvent.objects.all(), shop_ids)
    window = now - timedelta(hours=WINDOW_HOURS)
    stats = DashboardStats(now=now)
    stats.backlog = _backlog(events, now)
    stats.throughput = _throughput(events, now)
    stats.outcomes, stats.freshness = _finished(events, shop_ids, window)
    stats.dlq = _dlq(shop_ids, now)
    stats.index = _index(shop_ids)
    stats.llm = _llm(window, shop_ids)
    stats.runs = list(_scoped(SyncRun.objects.select_related("shop"), shop_ids)[:5])
    return stats


def _scoped(queryset: QuerySet, shop_ids: list[int] | None) -> QuerySet:
    return queryset if shop_ids is None else queryset.filter(shop_id__in=shop_ids)


def _backlog(events: QuerySet, now: datetime) -> dict[str, Any]:
    # Two small queries, each served by its partial index (pending; processing).
    pending = events.filter(status=Status.PENDING).aggregate(
        n=Count("id"), oldest=Min("received_at"), due=Count("id", filter=Q(next_attempt_at__lte=now))
    )
    processing = events.filter(status=Status.PROCESSING).count()
    oldest = pending["oldest"]
    return {
        "pending": pending["n"],
        "due": pending["due"],
        "retrying": pending["n"] - pending["due"],
        "processing": processing,
        "oldest": oldest,
        "oldest_age": (now - oldest).total_seconds() if oldest else None,
    }


def _throughput(events: QuerySet, now: datetime) -> list[dict[str, Any]]:
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(hours=THROUGHPUT_HOURS)
    received = _per_minute(events.filter(received_at__gte=start), "received_at")
    processed = _per_minute(
        events.filter(received_at__gte=start - timedelta(hours=1), processed_at__gte=start), "processed_at"
    )
    minutes = []
    moment = start
    while moment < end:
        minutes.append(
            {"at": moment, "received": received.get(moment, 0), "processed": processed.get(moment, 0)}
        )
        moment += timedelta(minutes=1)
    return minutes


def _per_minute(events: QuerySet, column: str) -> dict[datetime, int]:
    rows = events.annotate(minute=TruncMinute(column)).values("minute").annotate(n=Count("*")).order_by()
    return {row["minute"]: row["n"] for row in rows}


def _finished(
    events: QuerySet, shop_ids: list[int] | None, since: datetime
) -> tuple[dict[str, int], dict[str, float | None]]:
    """Outcomes (applied / stale / no-op / duplicate / rejected, and failed, skipped) and freshness
    in the window. Freshness: seconds from Shopify's trigger (or our receipt when the header was
    absent) to the index write, over applied events; an event is finished only after its
    product's index write succeeded, so `processed_at` is the write's time."""
    recent = events.filter(received_at__gte=since)
    duplicate = recent.filter(duplicate_deliveries__gt=0).aggregate(n=Sum("duplicate_deliveries"))["n"] or 0
    rejected = recent.filter(status=Status.REJECTED).count()
    if connection.vendor != "postgresql":
        outcomes = _outcomes_orm(recent)
        lags = _lags(recent)
        freshness = {"count": len(lags), **{f"p{q}": _percentile(lags, q / 100) for q in (50, 95, 99)}}
    else:
        scope = "" if shop_ids is None else " AND shop_id = ANY(%s)"
        table = WebhookEvent._meta.db_table  # from the model; every value is a parameter
        sql = f"{FINISHED_SELECT} FROM {table} WHERE {FINISHED_WHERE}{scope}"
        with connection.cursor() as cursor:
            cursor.execute(sql, [since] if shop_ids is None else [since, list(shop_ids)])
            applied, stale, noop, failed, skipped, values = cursor.fetchone()
        outcomes = {"applied": applied, "stale": stale, "no-op": noop, "failed": failed, "skipped": skipped}
        values = values or [None, None, None]
        freshness = {"count": applied, "p50": values[0], "p95": values[1], "p99": values[2]}
    ordered = {name: outcomes[name] for name in ("applied", "stale", "no-op")}
    ordered.update(
        duplicate=duplicate, rejected=rejected, failed=outcomes["failed"], skipped=outcomes["skipped"]
    )
    return ordered, freshness


def _outcomes_orm(recent: QuerySet) -> dict[str, int]:
    rows = recent.filter(processed_at__isnull=False).values("outcome").annotate(n=Count("id")).order_by()
    counts = {row["outcome"]: row["n"] for row in rows}
    return {name: counts.get(name, 0) for name in ("applied", "stale", "no-op", "failed", "skipped")}


def _lags(recent: QuerySet) -> list[float]:
    # SQLite (the demo) has no percentile aggregate; its data is small.
    rows = recent.filter(status=Status.DONE, outcome=Outcome.APPLIED, processed_at__isnull=False)
    return sorted(
        (p - (t or r)).total_seconds()
        for p, t, r in rows.values_list("processed_at", "triggered_at", "received_at")
    )


def _percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, as Postgres's percentile_cont."""
    if not values:
        return None
    position = q * (len(values) - 1)
    low = int(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _dlq(shop_ids: list[int] | None, now: datetime) -> dict[str, Any]:
    open_letters = _scoped(DeadLetter.objects.filter(resolved_at__isnull=True), shop_ids)
    row = open_letters.aggregate(n=Count("id"), oldest=Min("first_failed_at"))
    classes = list(
        open_letters.values("error_class").annotate(n=Count("id")).order_by("-n", "error_class")[:4]
    )
    recent = list(
        open_letters.select_related("event")
        .defer("event__body", "event__headers")
        .order_by("-last_failed_at")[:5]
    )
    for letter in recent:
        letter.age = (now - letter.last_failed_at).total_seconds()
    oldest = row["oldest"]
    return {
        "open": row["n"],
        "oldest": oldest,
        "oldest_age": (now - oldest).total_seconds() if oldest else None,
        "classes": classes,
        "recent": recent,
    }


MERCHANT_INDEX_ERROR = (
    "the search index is not accepting writes right now; your changes are kept and applied once it "
    "recovers (the operators see the details)"
)


def _index(shop_ids: list[int] | None) -> dict[str, Any]:
    alias = settings.SEARCH_BACKEND
    health = IndexHealth.objects.filter(alias=alias).first()
    try:
        get_backend().ping()
        reachable, ping_error = True, ""
    except IndexError_ as exc:
        reachable, ping_error = False, str(exc)
    now = timezone.now()
    paused = bool(health and health.paused_until and health.paused_until > now)
    degraded = bool(health and health.degraded_since)
    products = _scoped(Product.objects.live(), shop_ids)
    behind = products_behind_index(products).count()
    if paused:
        state = "paused"
    elif not reachable or degraded:
        state = "degraded"
    else:
        state = "healthy"
    error = ping_error or (health.last_error if health and degraded else "")
    if error and shop_ids is not None:
        # The index is shared: its raw errors can name other shops' documents and internal hosts.
        error = MERCHANT_INDEX_ERROR
    return {
        "alias": alias,
        "state": state,
        "reachable": reachable,
        "error": error,
        "paused_until": health.paused_until if paused else None,
        "degraded_since": health.degraded_since if health else None,
        "products": products.count(),
        "behind": behind,
    }


def _llm(since: datetime, shop_ids: list[int] | None) -> dict[str, Any]:
    from scoring.selectors import llm_fallback_stats

    if shop_ids is not None:  # the scorer's figures are for the whole platform: ops only
        return {"visible": False}
    stats = llm_fallback_stats(since)
    scored, fallbacks = stats.get("scored", 0), stats.get("fallbacks", 0)
    return {
        "visible": True,
        "scored": scored,
        "fallbacks": fallbacks,
        "rate": (fallbacks / scored) if scored else None,
    }
