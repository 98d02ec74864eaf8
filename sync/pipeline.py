"""The drain: claim pending webhook events in batches, apply each through catalog services, and
write the outcome to the index. At-least-once and idempotent: re-running an event is harmless.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from catalog import services as catalog
from catalog.models import Shop
from catalog.normalize import product_from_rest
from catalog.normalize.fields import parse_id
from catalog.normalize.rest import product_from_rest_timestamp
from catalog.normalize.types import NormalizationError
from search.backends.base import IndexError_
from search.indexer import product_index, product_index_inventory

from .dlq import dead_letter_record, dead_letter_resolve
from .health import index_degraded, index_pause, index_paused, index_recover_if_healthy
from .models import DeadLetter, WebhookEvent

logger = logging.getLogger("shopsync.pipeline")
Status, Outcome = WebhookEvent.Status, WebhookEvent.Outcome
# Retry delays grow 2^attempt seconds from RETRY_BASE_SECONDS, capped, with jitter so a burst of
# failures does not come back as a burst.
RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 600.0
# Every shop with due work gets at least this many events of a claimed batch: fair, and not so
# small that a batch of many shops degenerates into one query per event.
MIN_SHOP_SHARE = 10
# How often an idle drain asks a failing index whether it is back.
PROBE_INTERVAL_SECONDS = 2.0


@dataclass
class DrainStats:
    outcomes: Counter = field(default_factory=Counter)
    retried: int = 0
    paused: bool = False

    @property
    def processed(self) -> int:
        return sum(self.outcomes.values())

    def as_dict(self) -> dict[str, int]:
        return {**self.outcomes, "retried": self.retried, "processed": self.processed}


def drain(
    *,
    batch_size: int | None = None,
    idle_seconds: float = 0.0,
    on_event: Callable[[WebhookEvent], None] | None = None,
) -> DrainStats:
    """Process pending events until none is left (and none arrives for `idle_seconds`)."""
    stats = DrainStats()
    batch_size = batch_size or settings.SYNC_BATCH_SIZE
    idle_until = time.monotonic() + idle_seconds
    next_probe = 0.0
    while True:
        if time.monotonic() >= next_probe:
            index_recover_if_healthy()
            next_probe = time.monotonic() + PROBE_INTERVAL_SECONDS
        batch = [] if index_paused() else claim_batch(batch_size)
        if not batch:
            if time.monotonic() >= idle_until:
                return stats
            time.sleep(0.1)
            continue
        batch = _coalesce(batch, stats, on_event)
        for position, event in enumerate(batch):
            if stats.paused:
                _release(batch[position:])
                break
            event_process(event, stats)
            if on_event:
                on_event(event)
        idle_until = time.monotonic() + idle_seconds


def claim_batch(size: int) -> list[WebhookEvent]:
    """Take up to `size` due events with a lease, shared fairly between shops.

    Each shop with due work gets an equal share of the batch, so one shop's storm (a bulk edit of
    50,000 products) cannot starve the others. Rows locked by another worker are skipped (SKIP
    LOCKED on Postgres); an event whose lease expired belonged to a worker that died, and is due
    again.
    """
    now = timezone.now()
    with transaction.atomic():
        ids = _expired_leases(now, size)
        ids += _fair_shares(now, size - len(ids))
        if not ids:
            return []
        WebhookEvent.objects.filter(id__in=ids).update(
            status=Status.PROCESSING,
            attempts=F("attempts") + 1,
            lease_expires_at=now + timedelta(seconds=settings.SYNC_LEASE_SECONDS),
        )
    return list(WebhookEvent.objects.filter(id__in=ids).select_related("shop").order_by("id"))


def _fair_shares(now, size: int) -> list[int]:
    """Up to `size` due events, an equal share per shop; what a small shop leaves unused is
    shared again among the shops that have more."""
    ids: list[int] = []
    last_id = dict.fromkeys(_shops_with_due_work(now), 0)
    while len(ids) < size and last_id:
        share = max(MIN_SHOP_SHARE, -(-(size - len(ids)) // len(last_id)))
        for shop_id in list(last_id):
            want = min(share, size - len(ids))
            got = _due_for_shop(shop_id, now, want, after=last_id[shop_id]) if want > 0 else []
            ids += got
            if len(got) < want or not got:
                del last_id[shop_id]  # nothing more due for this shop
            else:
                last_id[shop_id] = got[-1]
    return ids


def _expired_leases(now, size: int) -> list[int]:
    return list(
        WebhookEvent.objects.select_for_update(skip_locked=True)
        .filter(status=Status.PROCESSING, lease_expires_at__lt=now)
        .order_by("id")
        .values_list("id", flat=True)[:size]
    )


def _shops_with_due_work(now) -> list[int]:
    """Shops that have due events (one index probe per shop, whatever the backlog's size), in
    random order so that, when shares do not cover every shop, no shop is always last."""
    due = WebhookEvent.objects.filter(shop_id=OuterRef("pk"), status=Status.PENDING, next_attempt_at__lte=now)
    return list(Shop.objects.filter(Exists(due)).order_by("?").values_list("pk", flat=True))


def _due_for_shop(shop_id: int, now, limit: int, *, after: int) -> list[int]:
    return list(
        WebhookEvent.objects.select_for_update(skip_locked=True)
        .filter(shop_id=shop_id, status=Status.PENDING, next_attempt_at__lte=now, id__gt=after)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def _coalesce(
    batch: list[WebhookEvent], stats: DrainStats, on_event: Callable[[WebhookEvent], None] | None
) -> list[WebhookEvent]:
    """Fifty updates of one product in one batch become one write: only the newest payload of
    each product is applied; the others are stale by construction and are recorded as such."""
    newest: dict[tuple[int, int], tuple[tuple, WebhookEvent]] = {}
    for event in batch:
        key = _product_key(event)
        if key is None:
            continue
        rank = key[2:]
        current = newest.get(key[:2])
        if current is None or rank > current[0]:
            newest[key[:2]] = (rank, event)
    keep = {id(event) for _, event in newest.values()}
    superseded = [e for e in batch if _product_key(e) is not None and id(e) not in keep]
    for event in superseded:
        winner = newest[_product_key(event)[:2]][1]
        _finish(
            event,
            status=Status.DONE,
            outcome=Outcome.STALE,
            note=f"superseded by event {winner.pk} in the same batch",
        )
        stats.outcomes[Outcome.STALE] += 1
        if on_event:
            on_event(event)
    dropped = {id(e) for e in superseded}
    return [e for e in batch if id(e) not in dropped]


def _product_key(event: WebhookEvent) -> tuple | None:
    """(shop, product id, updated_at, event id) of a product upsert, or None (not coalesced)."""
    if event.topic not in ("products/create", "products/update"):
        return None
    cached = getattr(event, "_product_key", False)
    if cached is not False:
        return cached
    key = None
    try:
        payload = orjson.loads(bytes(event.body))
        updated_at = product_from_rest_timestamp(payload)
        key = (event.shop_id, parse_id(payload["id"]), updated_at, event.pk)
    except (orjson.JSONDecodeError, NormalizationError, KeyError, TypeError):
        key = None  # a malformed payload is processed alone and fails with its own reason
    event._product_key = key
    return key


def event_process(event: WebhookEvent, stats: DrainStats) -> None:
    """Apply one event and record how it ended. Never raises: failures are recorded on the row."""
    try:
        with transaction.atomic():
            outcome, note = _apply(event)
    except IndexError_ as exc:
        if exc.blocked:
            _pause_index(event, stats, str(exc))
        else:
            if exc.retryable:
                index_degraded(str(exc))
            _fail(event, stats, exc, permanent=not exc.retryable)
        return
    except (NormalizationError, orjson.JSONDecodeError) as exc:
        _fail(event, stats, exc, permanent=True, prefix="malformed payload: ")
        return
    except Exception as exc:  # an unexpected bug or outage must not lose the event: retry it
        logger.exception("event %s (%s) failed", event.pk, event.topic)
        _fail(event, stats, exc, permanent=False)
        return
    failed_before = bool(event.error)
    status = Status.SKIPPED if outcome == Outcome.SKIPPED else Status.DONE
    _finish(event, status=status, outcome=outcome, note=note)
    if failed_before:  # if it was dead-lettered, the letter is resolved now
        dead_letter_resolve(event=event)
    stats.outcomes[outcome] += 1


def _apply(event: WebhookEvent) -> tuple[str, str]:
    handler = HANDLERS.get(event.topic)
    if handler is None:
        return Outcome.SKIPPED, f"topic {event.topic!r} is not synced"
    payload = orjson.loads(bytes(event.body))
    if not isinstance(payload, dict):
        raise NormalizationError("body must be a JSON object")
    return handler(event, payload)


def _product_upsert(event: WebhookEvent, payload: dict) -> tuple[str, str]:
    result = catalog.product_apply(shop=event.shop, data=product_from_rest(payload), source="webhook")
    if result.outcome == catalog.APPLIED:
        if result.content_changed:
            product_index(result.product)
        else:
            product_index_inventory(result.product)
    return result.outcome, result.reason


def _product_delete(event: WebhookEvent, payload: dict) -> tuple[str, str]:
    deleted_at = event.triggered_at or event.received_at
    result = catalog.product_delete(
        shop=event.shop, shopify_id=parse_id(payload.get("id")), deleted_at=deleted_at
    )
    if result.outcome == catalog.APPLIED:
        product_index(result.product)
    return result.outcome, result.reason


def _inventory_update(event: WebhookEvent, payload: dict) -> tuple[str, str]:
    result = catalog.inventory_level_apply(shop=event.shop, payload=payload)
    for product in result.products:
        product_index_inventory(product)
    return result.outcome, result.reason


def _order_create(event: WebhookEvent, payload: dict) -> tuple[str, str]:
    result = catalog.order_record(shop=event.shop, payload=payload)
    return result.outcome, result.reason


HANDLERS: dict[str, Callable[[WebhookEvent, dict], tuple[str, str]]] = {
    "products/create": _product_upsert,
    "products/update": _product_upsert,
    "products/delete": _product_delete,
    "inventory_levels/update": _inventory_update,
    "orders/create": _order_create,
}


def _fail(
    event: WebhookEvent, stats: DrainStats, exc: Exception, *, permanent: bool, prefix: str = ""
) -> None:
    error = f"{prefix}{exc}" if prefix or isinstance(exc, IndexError_) else f"{type(exc).__name__}: {exc}"
    if permanent or event.attempts >= settings.SYNC_MAX_ATTEMPTS:
        kind = DeadLetter.Kind.PERMANENT if permanent else DeadLetter.Kind.EXHAUSTED
        dead_letter_record(event=event, kind=kind, error_class=type(exc).__name__, error=error)
        stats.outcomes[Outcome.FAILED] += 1
        logger.error("event %s (%s) dead-lettered (%s): %s", event.pk, event.topic, kind, error)
        return
    delay = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** max(event.attempts - 1, 0))
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=Status.PENDING,
        error=error,
        lease_expires_at=None,
        next_attempt_at=timezone.now() + timedelta(seconds=delay * random.uniform(0.5, 1.0)),
    )
    stats.retried += 1


def _pause_index(event: WebhookEvent, stats: DrainStats, error: str) -> None:
    """Feed blocked: pause all writes and put the event back without spending an attempt."""
    until = index_pause(error)
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=Status.PENDING,
        error=error,
        lease_expires_at=None,
        attempts=F("attempts") - 1,
        next_attempt_at=until,
    )
    stats.retried += 1
    stats.paused = True


def _release(events: list[WebhookEvent]) -> None:
    """Hand claimed events back untouched (writes are paused): no attempt is spent."""
    WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(
        status=Status.PENDING, lease_expires_at=None, attempts=F("attempts") - 1
    )


def _finish(event: WebhookEvent, *, status: str, outcome: str, note: str = "", error: str = "") -> None:
    now = timezone.now()
    note = note[:500]
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=status, outcome=outcome, note=note, error=error, processed_at=now, lease_expires_at=None
    )
    event.status, event.outcome, event.note, event.error, event.processed_at = (
        status,
        outcome,
        note,
        error,
        now,
    )
