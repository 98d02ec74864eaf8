"""The drain: claim due webhook events in batches, apply each to the catalog in its own
transaction, then write every touched product's pending index writes in one backend call.

At-least-once and idempotent: an event is finished only once its product's index document holds
the change; re-running an event is harmless (stale or no-op, and its pending writes go out).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from catalog.normalize.types import NormalizationError
from config.db import bulk_set
from search.backends.base import IndexError_, WriteOutcome, WriteResult
from search.indexer import products_sync_index

from .claims import BatchLease, claim_batch, coalesce
from .dlq import dead_letter_record, dead_letter_resolve
from .handlers import Handled, event_apply, inventory_change, inventory_changes_apply
from .health import index_degraded, index_pause, index_paused, index_recover_if_healthy
from .models import DeadLetter, WebhookEvent

logger = logging.getLogger("shopsync.pipeline")
Status, Outcome = WebhookEvent.Status, WebhookEvent.Outcome
# Retry delays grow 2^attempt seconds from RETRY_BASE_SECONDS, capped, with jitter so a burst of
# failures does not come back as a burst.
RETRY_BASE_SECONDS = 2.0
RETRY_CAP_SECONDS = 600.0
# How often an idle drain asks a failing index whether it is back.
PROBE_INTERVAL_SECONDS = 2.0
OnEvent = Callable[[WebhookEvent], None] | None
INVENTORY_TOPIC = "inventory_levels/update"
# Finished events sharing status, outcome and note are updated together from this many on.
SHARED_UPDATE_MIN = 5
# A batch's new inventory levels can collide with another worker's; the batch is re-read this
# many times before its events are retried later.
INVENTORY_CONFLICT_RETRIES = 3


@dataclass
class DrainStats:
    outcomes: Counter = field(default_factory=Counter)
    retried: int = 0
    paused: bool = False
    paused_until: datetime | None = None
    cpu_seconds: float = 0.0  # set by whoever times the drain (the benchmark)
    # Events of the current batch that went to the dead-letter queue (reported to on_event too).
    dead: list[WebhookEvent] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return sum(self.outcomes.values())

    def as_dict(self) -> dict[str, int]:
        return {**self.outcomes, "retried": self.retried, "processed": self.processed}


def drain(
    *, batch_size: int | None = None, idle_seconds: float = 0.0, on_event: OnEvent = None
) -> DrainStats:
    """Process due events until none is left (and none arrives for `idle_seconds`)."""
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
        batch_process(batch, stats, on_event)
        idle_until = time.monotonic() + idle_seconds


def batch_process(batch: list[WebhookEvent], stats: DrainStats, on_event: OnEvent = None) -> None:
    """Apply a claimed batch: catalog first (per event; inventory all at once), then the index
    (one backend call for the batch), then record every finished event in one UPDATE."""
    lease = BatchLease(batch)
    kept, superseded = coalesce(batch)
    done: list[tuple[WebhookEvent, Handled]] = []
    # Products before stock: a product created in this batch has its variants when the batch's
    # inventory levels arrive, so they count at once instead of being parked for it.
    handled = []
    for event in kept:
        if event.topic != INVENTORY_TOPIC:
            lease.keep()
            if (h := _apply(event, stats)) is not None:
                handled.append((event, h))
    lease.keep()
    handled += _apply_inventory([event for event in kept if event.topic == INVENTORY_TOPIC], stats)
    lease.keep()
    failures = _sync_index([pk for _, h in handled for pk in h.product_ids])
    lease.keep()
    for event, h in handled:
        failure = next((failures[pk] for pk in h.product_ids if pk in failures), None)
        if failure is None:
            done.append((event, _applied_earlier(event, h)))
        else:
            _index_failed(event, h, failure, stats)
    succeeded = {event.pk for event, _ in done}
    for event, winner in superseded:
        if winner.pk in succeeded:
            done.append((event, Handled(Outcome.STALE, f"superseded by event {winner.pk} in the same batch")))
        else:  # the newer one failed: this one must not be lost with it, so it goes back in line
            _release([event])
    _finish_all(done, stats, on_event)
    dead, stats.dead = stats.dead, []
    if on_event:
        for event in dead:
            on_event(event)


def _applied_earlier(event: WebhookEvent, handled: Handled) -> Handled:
    if event.stored_at and handled.outcome in (Outcome.NOOP, Outcome.STALE):
        # An earlier attempt stored the change and failed writing the index; this one wrote it.
        return Handled(
            Outcome.APPLIED, "stored by an earlier attempt; index written now", handled.product_ids
        )
    return handled


def _release(events: list[WebhookEvent]) -> None:
    """Hand claimed events back untouched, without spending an attempt."""
    WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).update(
        status=Status.PENDING, lease_expires_at=None, attempts=F("attempts") - 1
    )


def _index_failed(event: WebhookEvent, handled: Handled, failure: WriteResult, stats: DrainStats) -> None:
    if handled.outcome == Outcome.APPLIED:  # stored: a retry will find it so and must still say applied
        event.stored_at = timezone.now()
        WebhookEvent.objects.filter(pk=event.pk).update(stored_at=event.stored_at)
    if failure.outcome == WriteOutcome.BLOCKED:
        _pause_index(event, stats, failure.error)
        return
    retryable = failure.outcome == WriteOutcome.RETRYABLE
    if retryable:
        index_degraded(failure.error)
    _fail(event, stats, IndexError_(failure.error, retryable=retryable), permanent=not retryable)


def _apply(event: WebhookEvent, stats: DrainStats) -> Handled | None:
    """The event's catalog changes, committed on their own; None if it failed (recorded)."""
    try:
        with transaction.atomic():
            return event_apply(event)
    except (NormalizationError, orjson.JSONDecodeError) as exc:
        _fail(event, stats, exc, permanent=True, prefix="malformed payload: ")
    except Exception as exc:  # an unexpected bug or outage must not lose the event: retry it
        logger.exception("event %s (%s) failed", event.pk, event.topic)
        _fail(event, stats, exc, permanent=False)
    return None


def _apply_inventory(events: list[WebhookEvent], stats: DrainStats) -> list[tuple[WebhookEvent, Handled]]:
    """Inventory is the bulk of the traffic: the batch's levels are applied in one transaction."""
    parsed: list[WebhookEvent] = []
    changes = []
    for event in events:
        try:
            changes.append(inventory_change(event))
            parsed.append(event)
        except (NormalizationError, orjson.JSONDecodeError) as exc:
            _fail(event, stats, exc, permanent=True, prefix="malformed payload: ")
    if not parsed:
        return []
    try:
        for attempt in range(INVENTORY_CONFLICT_RETRIES):
            try:
                return list(zip(parsed, inventory_changes_apply(changes), strict=True))
            except IntegrityError:
                # Another worker created one of these levels first; the batch rolled back whole.
                # Read again: the level now exists and the changes are compared with it.
                if attempt == INVENTORY_CONFLICT_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")
    except Exception as exc:  # the database broke: retry them all later
        logger.exception("inventory batch of %d event(s) failed", len(parsed))
        for event in parsed:
            _fail(event, stats, exc, permanent=False)
        return []


def _sync_index(product_ids: list[int]) -> dict[int, WriteResult]:
    try:
        return products_sync_index(product_ids)
    except Exception as exc:  # the database or the backend itself broke: every write is retried
        logger.exception("index writes of %d product(s) failed", len(set(product_ids)))
        error = f"{type(exc).__name__}: {exc}"
        return {pk: WriteResult(None, WriteOutcome.RETRYABLE, error) for pk in product_ids}


def _finish_all(done: list[tuple[WebhookEvent, Handled]], stats: DrainStats, on_event: OnEvent) -> None:
    now = timezone.now()
    resolved = []
    for event, handled in done:
        if event.error:  # it failed before: if it was dead-lettered, the letter is resolved now
            resolved.append(event)
        event.status = Status.SKIPPED if handled.outcome == Outcome.SKIPPED else Status.DONE
        event.outcome, event.note, event.error = handled.outcome, handled.note[:500], ""
        event.processed_at, event.lease_expires_at = now, None
        stats.outcomes[handled.outcome] += 1
    fields = ["status", "outcome", "note", "error", "processed_at", "lease_expires_at"]
    _record_finished([event for event, _ in done], fields)
    for event in resolved:
        dead_letter_resolve(event=event)
    if on_event:
        for event, _ in done:
            on_event(event)


def _record_finished(events: list[WebhookEvent], fields: list[str]) -> None:
    """Most finished events of a batch share status, outcome and note (inventory: all of them):
    those get one plain UPDATE ... WHERE id IN; only the rest needs per-row values."""
    groups: dict[tuple, list[WebhookEvent]] = defaultdict(list)
    for event in events:
        groups[(event.status, event.outcome, event.note)].append(event)
    now = timezone.now()
    singles = []
    for (status, outcome, note), members in groups.items():
        if len(members) < SHARED_UPDATE_MIN:
            singles += members
            continue
        WebhookEvent.objects.filter(pk__in=[e.pk for e in members]).update(
            status=status, outcome=outcome, note=note, error="", processed_at=now, lease_expires_at=None
        )
    bulk_set(WebhookEvent, fields, [(e.pk, *(getattr(e, f) for f in fields)) for e in singles])


def _fail(
    event: WebhookEvent, stats: DrainStats, exc: Exception, *, permanent: bool, prefix: str = ""
) -> None:
    error = f"{prefix}{exc}" if prefix or isinstance(exc, IndexError_) else f"{type(exc).__name__}: {exc}"
    if permanent or event.attempts >= settings.SYNC_MAX_ATTEMPTS:
        kind = DeadLetter.Kind.PERMANENT if permanent else DeadLetter.Kind.EXHAUSTED
        dead_letter_record(event=event, kind=kind, error_class=type(exc).__name__, error=error)
        stats.outcomes[Outcome.FAILED] += 1
        stats.dead.append(event)
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
    if stats.paused_until is None:
        stats.paused_until = index_pause(error)
    until = stats.paused_until
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=Status.PENDING,
        error=error,
        lease_expires_at=None,
        attempts=F("attempts") - 1,
        next_attempt_at=until,
    )
    stats.retried += 1
    stats.paused = True
