"""Reads about one product's sync: its state (in sync / pending / failed / stale in index), the
answer to "why is this stale?", and its activity timeline.

Ingest records what each delivery is about (`WebhookEvent.subject_id`: the product, inventory item
or order id), so a product's deliveries are found by an index: its own id for product topics, its
variants' inventory items for levels, the orders that sold it for orders. Deliveries stored before
that column existed are found from their bodies among the shop's newest ones. Reads are bounded
(constants below) so a page never reads an unbounded backlog.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

import orjson
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import BigIntegerField, Case, CharField, F, Q, QuerySet, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce

from catalog.models import OrderLine, Product, Variant
from scoring.selectors import product_score_history
from search.backends.base import WRITERS
from search.models import EmbeddingRecord

from .models import DeadLetter, WebhookEvent

PRODUCT_TOPICS = ("products/create", "products/update", "products/delete")
INVENTORY_TOPIC = "inventory_levels/update"
ORDER_TOPIC = "orders/create"
# A product page searches this many of its shop's newest deliveries for its events: enough for
# days of a busy shop's traffic, bounded so the page stays fast on any history.
TIMELINE_SCAN_EVENTS = 5000
# The product list's "pending" and "failed" states read at most this many waiting or dead events
# (their subjects: a few numbers each), and this many older ones without a subject (bodies).
STATE_SCAN_EVENTS = 20000
STATE_SCAN_BODIES = 5000
# A product's timeline looks for deliveries of at most this many of the orders that sold it.
TIMELINE_ORDERS = 200
TIMELINE_EMBEDDINGS = 20

IN_SYNC, PENDING, FAILED, STALE_IN_INDEX = "in sync", "pending", "failed", "stale in index"
SYNC_STATES = (IN_SYNC, PENDING, FAILED, STALE_IN_INDEX)
WAITING = (WebhookEvent.Status.PENDING, WebhookEvent.Status.PROCESSING)


def _component(vector: str, writer: str):
    return Coalesce(Cast(KeyTextTransform(writer, vector), BigIntegerField()), Value(0))


def behind_index_q() -> Q:
    """Products whose stored version is ahead of what the index confirmed, for any writer."""
    q = Q()
    for writer in WRITERS:
        q |= Q(**{f"vv_{writer}__gt": _component("index_vector", writer)})
    return q


def products_behind_index(products: QuerySet) -> QuerySet:
    """The products with a pending index write. On Postgres one jsonb comparison per row (the
    index vector only ever catches up with the version vector, so unequal means behind)."""
    if connection.vendor == "postgresql":
        return products.exclude(version_vector=F("index_vector"))
    return with_vector_components(products).filter(behind_index_q())


def with_vector_components(queryset: QuerySet) -> QuerySet:
    return queryset.alias(**{f"vv_{w}": _component("version_vector", w) for w in WRITERS})


def sync_state_sets(*, shop_ids: list[int] | None) -> tuple[list[int], list[int]]:
    """The products an open dead letter touches, and those a waiting event touches."""
    failed = products_of_events(
        WebhookEvent.objects.filter(
            status=WebhookEvent.Status.DEAD, dead_letter__isnull=False, dead_letter__resolved_at__isnull=True
        ),
        shop_ids=shop_ids,
    )
    # Two equality arms (not IN), so Postgres reads each from its partial index (pending; leased).
    waiting_q = Q(status=WebhookEvent.Status.PENDING) | Q(status=WebhookEvent.Status.PROCESSING)
    waiting = products_of_events(WebhookEvent.objects.filter(waiting_q), shop_ids=shop_ids)
    return failed, waiting


def annotate_sync_state(queryset: QuerySet, *, failed: list[int], waiting: list[int]) -> QuerySet:
    """Adds `sync_state`: failed (an open dead letter touches it) > stale in index (a stored
    change not yet in the index) > pending (an event for it is waiting) > in sync."""
    return with_vector_components(queryset).annotate(
        sync_state=Case(
            When(pk__in=failed, then=Value(FAILED)),
            When(behind_index_q(), then=Value(STALE_IN_INDEX)),
            When(pk__in=waiting, then=Value(PENDING)),
            default=Value(IN_SYNC),
            output_field=CharField(),
        )
    )


def products_of_events(events: QuerySet, *, shop_ids: list[int] | None) -> list[int]:
    """Ids of the products the (newest STATE_SCAN_EVENTS of the) events touch."""
    if shop_ids is not None:
        events = events.filter(shop_id__in=shop_ids)
    rows = events.filter(topic__in=(*PRODUCT_TOPICS, INVENTORY_TOPIC)).order_by("-id")
    ids_by_shop: dict[int, set[int]] = defaultdict(set)
    items_by_shop: dict[int, set[int]] = defaultdict(set)
    subjects = rows.filter(subject_id__isnull=False).values_list("shop_id", "topic", "subject_id")
    legacy = (
        (shop_id, topic, _payload(body).get("inventory_item_id" if topic == INVENTORY_TOPIC else "id"))
        for shop_id, topic, body in rows.filter(subject_id__isnull=True).values_list(
            "shop_id", "topic", "body"
        )[:STATE_SCAN_BODIES]
    )
    for shop_id, topic, value in chain(subjects[:STATE_SCAN_EVENTS], legacy):
        if isinstance(value, int) and shop_id is not None:
            (items_by_shop if topic == INVENTORY_TOPIC else ids_by_shop)[shop_id].add(value)
    products: set[int] = set()
    for shop_id, ids in ids_by_shop.items():
        products.update(
            Product.objects.filter(shop_id=shop_id, shopify_id__in=ids).values_list("pk", flat=True)
        )
    for shop_id, items in items_by_shop.items():
        products.update(
            Variant.objects.filter(shop_id=shop_id, inventory_item_id__in=items).values_list(
                "product_id", flat=True
            )
        )
    return sorted(products)


def _payload(body: Any) -> dict:
    try:
        payload = orjson.loads(bytes(body))
    except orjson.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}


def product_events(product: Product, *, limit: int = 50) -> list[WebhookEvent]:
    """The newest `limit` deliveries that touched the product, newest first: by subject through
    the index, and deliveries stored without a subject among the shop's newest ones."""
    items = [v for v in product.variants.all().values_list("inventory_item_id", flat=True) if v]
    # (topic, subject) pairs, so ids of different kinds of object that coincide never match.
    about = Q(topic=INVENTORY_TOPIC, subject_id__in=items) if items else Q(pk__in=[])
    if product.shopify_id is not None:
        orders = list(
            OrderLine.objects.filter(shop_id=product.shop_id, product_shopify_id=product.shopify_id)
            .order_by("-order_id")
            .values_list("order_id", flat=True)
            .distinct()[:TIMELINE_ORDERS]
        )
        about |= Q(topic__in=PRODUCT_TOPICS, subject_id=product.shopify_id)
        if orders:
            about |= Q(topic=ORDER_TOPIC, subject_id__in=orders)
    found = list(
        WebhookEvent.objects.filter(about, shop_id=product.shop_id, subject_id__isnull=False)
        .defer("headers")
        .order_by("-id")[:limit]
    )
    older = _events_without_subject(product, items, limit)
    return sorted(found + older, key=lambda e: e.pk, reverse=True)[:limit]


def _events_without_subject(product: Product, items: list[int], limit: int) -> list[WebhookEvent]:
    """Deliveries stored before subjects were recorded, found from their bodies among the shop's
    newest TIMELINE_SCAN_EVENTS (matched in the database, then checked field by field)."""
    needles = [str(n).encode() for n in [product.shopify_id, *items] if n]
    if product.shopify_id is None and product.handle:
        needles.append(orjson.dumps(product.handle))  # "handle" as JSON text, quotes included
    if not needles:
        return []
    recent = WebhookEvent.objects.filter(shop_id=product.shop_id).order_by("-id")
    floor = recent.values_list("id", flat=True)[TIMELINE_SCAN_EVENTS - 1 : TIMELINE_SCAN_EVENTS].first()
    match = " OR ".join([_contains_sql()] * len(needles))
    candidates = (
        recent.filter(
            id__gte=floor or 0,
            subject_id__isnull=True,
            topic__in=(*PRODUCT_TOPICS, INVENTORY_TOPIC, ORDER_TOPIC),
        )
        .extra(where=[f"({match})"], params=needles)  # noqa: S610 (fixed SQL, needles are parameters)
        .defer("headers")
    )
    found = []
    for event in candidates[: limit * 4]:
        if _touches(event, product, set(items)):
            found.append(event)
            if len(found) == limit:
                break
    return found


def _contains_sql() -> str:
    if connection.vendor == "postgresql":
        return "position(%s::bytea in body) > 0"
    return "instr(body, %s) > 0"


def _touches(event: WebhookEvent, product: Product, items: set[int]) -> bool:
    payload = _payload(event.body)
    if event.topic == INVENTORY_TOPIC:
        return payload.get("inventory_item_id") in items
    if event.topic == ORDER_TOPIC:
        lines = payload.get("line_items") or []
        return any(isinstance(li, dict) and li.get("product_id") == product.shopify_id for li in lines)
    if product.shopify_id is not None:
        return payload.get("id") == product.shopify_id
    return bool(product.handle) and payload.get("handle") == product.handle


@dataclass
class SyncReport:
    """The answer to "why is this stale?" for one product."""

    state: str
    headline: str
    behind: list[tuple[str, int, int]] = field(default_factory=list)  # writer, stored, indexed
    last_event: WebhookEvent | None = None
    waiting: list[WebhookEvent] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


def product_sync_report(product: Product, events: list[WebhookEvent] | None = None) -> SyncReport:
    events = product_events(product) if events is None else events
    vv, iv = product.version_vector or {}, product.index_vector or {}
    behind = [(w, vv.get(w, 0), iv.get(w, 0)) for w in WRITERS if vv.get(w, 0) > iv.get(w, 0)]
    waiting = [e for e in events if e.status in WAITING]
    dead_ids = [e.pk for e in events if e.status == WebhookEvent.Status.DEAD]
    dead = list(DeadLetter.objects.filter(event_id__in=dead_ids, resolved_at__isnull=True))
    last = events[0] if events else None
    report = SyncReport(IN_SYNC, "", behind, last, waiting, dead)
    if dead:
        report.state = FAILED
        report.headline = (
            f"Failed: event #{dead[0].event_id} is in the dead-letter queue ({dead[0].error_class}: "
            f"{dead[0].error[:160]}). Replay it from the dead-letter queue once the cause is fixed."
        )
    elif behind:
        parts = ", ".join(f"{w} {stored} (index has {indexed})" for w, stored, indexed in behind)
        error = next((e.error for e in events if e.error), "")
        report.state = STALE_IN_INDEX
        report.headline = (
            f"Stale in index: the stored product is ahead of the index for {parts}; the write is pending"
            + (f" (last error: {error[:160]})" if error else "")
            + ". It is retried with its event; “Resync” writes it now."
        )
    elif waiting:
        report.state = PENDING
        oldest = min(e.received_at for e in waiting)
        retry = next((e.error for e in waiting if e.error), "")
        report.headline = (
            f"Pending: {len(waiting)} event(s) waiting, the oldest received {_ago(oldest)}"
            + (f"; retrying after: {retry[:160]}" if retry else "")
            + "."
        )
    else:
        written = f"written {_ago(product.indexed_at)}" if product.indexed_at else "never written"
        report.headline = "In sync: the index holds the stored version (" + written + ")."
    return report


def _ago(moment: datetime | None) -> str:
    from django.utils import timezone
    from django.utils.timesince import timesince

    if moment is None:
        return "never"
    return "just now" if (timezone.now() - moment).total_seconds() < 60 else f"{timesince(moment)} ago"


@dataclass(slots=True)
class TimelineEntry:
    at: datetime
    kind: str  # event | index | admin | catalog
    title: str
    detail: str = ""
    tone: str = "neutral"  # ok | warn | bad | neutral
    event_id: int | None = None


def product_timeline(product: Product, events: Iterable[WebhookEvent]) -> list[TimelineEntry]:
    """Everything that touched the product, newest first: deliveries and what they did, index
    writes, admin actions, the embeddings and the trend scores."""
    entries: list[TimelineEntry] = []
    tones = {"applied": "ok", "stale": "warn", "no-op": "neutral", "failed": "bad", "rejected": "bad"}
    for e in events:
        outcome = e.outcome or e.status
        title = f"{e.topic} · {outcome}"
        detail = e.note or e.error
        if e.processed_at and e.outcome == WebhookEvent.Outcome.APPLIED:
            lag = (e.processed_at - (e.triggered_at or e.received_at)).total_seconds()
            detail = f"stored and written to the index {lag:.1f} s after Shopify's trigger. {detail}".strip()
        entries.append(TimelineEntry(e.received_at, "event", title, detail, tones.get(outcome, "warn"), e.pk))
    if product.indexed_at:
        vector = " · ".join(f"{w} {v}" for w, v in sorted((product.index_vector or {}).items()))
        entries.append(TimelineEntry(product.indexed_at, "index", "last index write confirmed", vector, "ok"))
    content_type = ContentType.objects.get_for_model(Product)
    for log in LogEntry.objects.filter(content_type=content_type, object_id=str(product.pk))[:20]:
        entries.append(
            TimelineEntry(log.action_time, "admin", f"admin: {log.get_change_message()}", str(log.user))
        )
    entries.append(
        TimelineEntry(product.created_at, "catalog", "first stored in the catalog", product.handle)
    )
    records = list(EmbeddingRecord.objects.filter(product_id=product.pk)[:TIMELINE_EMBEDDINGS])
    for record in records:
        title = "embedded (vector of an identical text reused)" if record.reused else "embedded"
        entries.append(TimelineEntry(record.created_at, "embedding", title, record.model, "ok"))
    if product.embedded_at and not records:  # embedded before the history was kept
        entries.append(
            TimelineEntry(product.embedded_at, "embedding", "embedded", product.embedding_model, "ok")
        )
    for score in product_score_history(product_id=product.pk, limit=20):
        source = score.scorer + (f" (fallback: {score.fallback_reason})" if score.fallback else "")
        entries.append(
            TimelineEntry(
                score.created_at,
                "score",
                f"trend score {score.score:.2f} by {source}",
                score.explanation,
                "warn" if score.fallback else "ok",
            )
        )
    return sorted(entries, key=lambda entry: entry.at, reverse=True)
