"""Claiming work: due events in fair shares per shop, under a lease, coalesced per product."""

from __future__ import annotations

import time
from datetime import timedelta

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from catalog.models import Shop
from catalog.normalize.fields import parse_id
from catalog.normalize.rest import product_from_rest_timestamp
from catalog.normalize.types import NormalizationError

from .models import WebhookEvent

Status = WebhookEvent.Status
# Every shop with due work gets at least this many events of a claimed batch: fair, and not so
# small that a batch of many shops degenerates into one query per event.
MIN_SHOP_SHARE = 10


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
    # Headers are for people (the admin), not the pipeline: decoding 500 of them per batch is waste.
    # A batch holds a few shops: they are read once, not joined into each of 500 rows.
    events = list(WebhookEvent.objects.filter(id__in=ids).defer("headers").order_by("id"))
    shops = Shop.objects.in_bulk({e.shop_id for e in events if e.shop_id is not None})
    for event in events:
        if event.shop_id is not None:
            event.shop = shops[event.shop_id]
    return events


# A working batch renews its lease before a step once this much has passed since the last renewal,
# and may take this long after its index write (recording the finished events): the lease must
# outlast the longest index write plus twice this (checked at startup: sync.checks).
LEASE_MARGIN_SECONDS = 15.0


class BatchLease:
    """Keeps a claimed batch's leases alive between its steps. The one blocking index call is
    bounded by the backend and the lease outlasts it by two margins, so renewing before a step
    once a margin has passed leaves that call its whole length and the finishing a margin."""

    def __init__(self, batch: list[WebhookEvent]) -> None:
        self.batch, self.renewed = batch, time.monotonic()

    def keep(self) -> None:
        margin = min(LEASE_MARGIN_SECONDS, settings.SYNC_LEASE_SECONDS / 3)
        if time.monotonic() - self.renewed > margin:
            leases_renew(self.batch)
            self.renewed = time.monotonic()


def leases_renew(events: list[WebhookEvent]) -> int:
    """Extend the leases of these claimed events that have not run out (one that ran out may be
    another worker's by now, and stays its). Returns how many were renewed."""
    now = timezone.now()
    return WebhookEvent.objects.filter(
        pk__in=[e.pk for e in events], status=Status.PROCESSING, lease_expires_at__gte=now
    ).update(lease_expires_at=now + timedelta(seconds=settings.SYNC_LEASE_SECONDS))


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


def coalesce(batch: list[WebhookEvent]) -> tuple[list[WebhookEvent], list[tuple[WebhookEvent, WebhookEvent]]]:
    """Fifty updates of one product in one batch become one write: returns the events to apply
    (the newest payload of each product, and every other kind of event) and the superseded ones,
    each with the event that supersedes it; those are stale by construction."""
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
    kept, superseded = [], []
    for event in batch:
        key = _product_key(event)
        if key is None or id(event) in keep:
            kept.append(event)
        else:
            superseded.append((event, newest[key[:2]][1]))
    return kept, superseded


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
