"""Writes of the sync app: recording deliveries and the shops they belong to."""

from __future__ import annotations

import functools
import re
import threading
import time
from dataclasses import dataclass

import orjson
from django.db import connections, router
from django.db.models import F
from django.utils import timezone

from catalog.models import Shop
from catalog.normalize.fields import parse_datetime, parse_id
from catalog.normalize.types import NormalizationError

from .models import WebhookEvent
from .queue import drain_wakeup_on_commit

SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
# Shops (and their secrets) are cached per process so the hot path stays one INSERT; a secret
# changed in the admin is picked up within this many seconds.
SHOP_CACHE_SECONDS = 60.0
_shop_cache: dict[str, tuple[float, Shop | None]] = {}
_shop_cache_lock = threading.Lock()


@dataclass(slots=True)
class Delivery:
    """One HTTP delivery as received: headers that matter, all headers, and the raw body."""

    shop_domain: str
    topic: str
    webhook_id: str | None
    event_id: str
    triggered_at: str
    api_version: str
    headers: dict[str, str]
    body: bytes


def shop_lookup(domain: str) -> Shop | None:
    """The Shop for `domain`, or None, from a short per-process cache."""
    now = time.monotonic()
    with _shop_cache_lock:
        cached = _shop_cache.get(domain)
    if cached and cached[0] > now:
        return cached[1]
    shop = Shop.objects.filter(domain=domain).first()
    with _shop_cache_lock:
        _shop_cache[domain] = (now + SHOP_CACHE_SECONDS, shop)
    return shop


def shop_cache_clear() -> None:
    with _shop_cache_lock:
        _shop_cache.clear()


def shop_get_or_create(*, domain: str) -> Shop:
    """A verified delivery from a shop we have not seen yet creates it (its app is installed)."""
    shop, _ = Shop.objects.get_or_create(domain=domain)
    with _shop_cache_lock:
        _shop_cache[domain] = (time.monotonic() + SHOP_CACHE_SECONDS, shop)
    return shop


def webhook_event_record(
    *, shop: Shop | None, delivery: Delivery, rejected_reason: str = "", payload: dict | None = None
) -> tuple[WebhookEvent | None, bool]:
    """Store a verified delivery; returns (event, created).

    One INSERT ... ON CONFLICT DO NOTHING: the unique (shop, webhook_id) constraint decides, so
    two copies racing on two workers cannot both be stored, and no savepoint or extra round trip
    is needed on the hot path. A repeat is counted on the original row. A created pending event
    wakes the drain worker after commit. Returns (None, False) for a repeat. `payload`: the body
    already parsed by the caller (the webhook view), so it is not parsed twice.
    """
    event = WebhookEvent(
        shop=shop,
        shop_domain=delivery.shop_domain,
        topic=delivery.topic,
        webhook_id=delivery.webhook_id,
        event_id=delivery.event_id,
        triggered_at=_header_datetime(delivery.triggered_at),
        api_version=delivery.api_version,
        headers=delivery.headers,
        body=delivery.body,
        received_at=timezone.now(),
        subject_id=None
        if rejected_reason
        else delivery_subject(delivery.topic, payload if payload is not None else json_object(delivery.body)),
    )
    if rejected_reason:
        event.status = WebhookEvent.Status.REJECTED
        event.outcome = WebhookEvent.Outcome.REJECTED
        event.error = rejected_reason
    else:
        event.next_attempt_at = event.received_at
    event.pk = _insert_unless_duplicate(event)
    if event.pk is None:
        WebhookEvent.objects.filter(shop=shop, webhook_id=delivery.webhook_id).update(
            duplicate_deliveries=F("duplicate_deliveries") + 1
        )
        return None, False
    if not rejected_reason:
        drain_wakeup_on_commit()
    return event, True


def _insert_unless_duplicate(event: WebhookEvent) -> int | None:
    connection = connections[router.db_for_write(WebhookEvent)]
    fields, sql = _insert_statement(connection.vendor)
    values = [f.get_db_prep_save(f.pre_save(event, add=True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    return row[0] if row else None


@functools.cache
def _insert_statement(vendor: str) -> tuple[list, str]:
    """The INSERT for one WebhookEvent, built once per process (identifiers come from the model,
    values are parameters)."""
    connection = next(c for c in connections.all() if c.vendor == vendor)
    fields = [f for f in WebhookEvent._meta.concrete_fields if not f.primary_key]
    table = connection.ops.quote_name(WebhookEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "  # noqa: S608
        "ON CONFLICT (shop_id, webhook_id) DO NOTHING RETURNING id"
    )
    return fields, sql


# Which key of a topic's body names what the delivery is about (see WebhookEvent.subject_id).
SUBJECT_KEYS = {
    "products/create": "id",
    "products/update": "id",
    "products/delete": "id",
    "inventory_levels/update": "inventory_item_id",
    "orders/create": "id",
    "orders/updated": "id",
}
MAX_SHOPIFY_ID = 2**63 - 1


def delivery_subject(topic: str, payload: dict | None) -> int | None:
    """The Shopify id a delivery (its parsed body) is about, or None: other topics, or a body
    without a usable id (the drain reports that; ingest only stores)."""
    key = SUBJECT_KEYS.get(topic)
    if key is None or not isinstance(payload, dict):
        return None
    try:
        value = parse_id(payload.get(key), name=key)
    except NormalizationError:
        return None
    return value if 0 < value <= MAX_SHOPIFY_ID else None


def json_object(body: bytes) -> dict | None:
    """The body as a JSON object, or None if it is not one."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def _header_datetime(value: str):
    try:
        return parse_datetime(value, name="X-Shopify-Triggered-At")
    except NormalizationError:
        return None  # optional header; the raw value stays in `headers`
