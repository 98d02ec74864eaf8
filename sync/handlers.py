"""Topic routing: each handler applies one delivery to the catalog and says which products it
touched. Index writes are not done here: the pipeline writes every touched product's pending
field groups once per batch (see search.indexer.products_sync_index).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from catalog import services as catalog
from catalog.inventory import LevelChange, inventory_levels_apply, level_change
from catalog.normalize import product_from_rest
from catalog.normalize.fields import parse_id
from catalog.normalize.types import NormalizationError
from scoring.services import derived_work_request, rescore_request

from .models import WebhookEvent


@dataclass(slots=True)
class Handled:
    outcome: str
    note: str = ""
    product_ids: list[int] = field(default_factory=list)  # whose index documents may need writes


def event_apply(event: WebhookEvent) -> Handled:
    """Apply the event's payload to the stored catalog (inside the caller's transaction)."""
    handler = HANDLERS.get(event.topic)
    if handler is None:
        return Handled(WebhookEvent.Outcome.SKIPPED, f"topic {event.topic!r} is not synced")
    payload = orjson.loads(bytes(event.body))
    if not isinstance(payload, dict):
        raise NormalizationError("body must be a JSON object")
    return handler(event, payload)


def inventory_change(event: WebhookEvent) -> LevelChange:
    """The level change an inventory_levels/update event carries (NormalizationError if none)."""
    payload = orjson.loads(bytes(event.body))
    if not isinstance(payload, dict):
        raise NormalizationError("body must be a JSON object")
    return level_change(shop=event.shop, payload=payload)


def inventory_changes_apply(changes: list[LevelChange]) -> list[Handled]:
    """Apply a batch's inventory changes at once (same outcomes as one by one, in order)."""
    results = inventory_levels_apply(changes)
    return [Handled(r.outcome, r.reason, [p.pk for p in r.products]) for r in results]


def _touched(result: catalog.ApplyResult) -> list[int]:
    # Even a stale or no-op event names its product: if an earlier attempt stored the change but
    # failed to write the index, this is when the pending write goes out.
    return [result.product.pk] if result.product is not None and result.product.pk else []


def _product_upsert(event: WebhookEvent, payload: dict) -> Handled:
    result = catalog.product_apply(shop=event.shop, data=product_from_rest(payload), source="webhook")
    _derived_work(result)
    return Handled(result.outcome, result.reason, _touched(result))


def _derived_work(result: catalog.ApplyResult) -> None:
    """Only a changed text re-embeds and only changed scoring inputs rescore (DESIGN §4.5)."""
    changed = [result.product.pk] if result.score_changed and result.product is not None else []
    derived_work_request(result.embed_changed, changed)


def _product_delete(event: WebhookEvent, payload: dict) -> Handled:
    deleted_at = event.triggered_at or event.received_at
    shopify_id = parse_id(payload.get("id"))
    result = catalog.product_delete(shop=event.shop, shopify_id=shopify_id, deleted_at=deleted_at)
    return Handled(result.outcome, result.reason, _touched(result))


def _inventory_update(event: WebhookEvent, payload: dict) -> Handled:
    # The drain applies a batch's inventory together (inventory_changes_apply); this is one alone.
    return inventory_changes_apply([level_change(shop=event.shop, payload=payload)])[0]


def _order_create(event: WebhookEvent, payload: dict) -> Handled:
    result = catalog.order_record(shop=event.shop, payload=payload)
    rescore_request(product_ids=[p.pk for p in result.products])  # sales velocity moved
    return Handled(result.outcome, result.reason)


HANDLERS: dict[str, Callable[[WebhookEvent, dict], Handled]] = {
    "products/create": _product_upsert,
    "products/update": _product_upsert,
    "products/delete": _product_delete,
    "inventory_levels/update": _inventory_update,
    "orders/create": _order_create,
}
