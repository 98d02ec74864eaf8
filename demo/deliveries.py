"""The demo's deliveries: real webhook captures from the shared fixtures, plus changes derived
from the imported catalog (a merchant edit, its late stale retry, stock, a delete, a duplicate
and a forged signature), so every outcome of the pipeline shows up once."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sync.security import sign

ROOT = Path(__file__).resolve().parent.parent
TOPICS = {
    "products_update": "products/update",
    "products_create-or-update": "products/create",
    "products_delete": "products/delete",
    "inventory_levels_update": "inventory_levels/update",
    "orders_create": "orders/create",
}
# Ids for the catalog's products once "Shopify" assigns them (CSV exports carry none).
DERIVED_ID_BASE = 7_100_000_000_000


@dataclass
class Delivery:
    label: str
    topic: str
    shop: str
    body: bytes
    webhook_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    headers: dict[str, str] = field(default_factory=dict)
    forged: bool = False
    repeat: bool = False
    search_after: str = ""
    status: int = 0

    def signed_headers(self, secret: str) -> dict[str, str]:
        signature = sign(self.body, "not-the-app-secret" if self.forged else secret)
        return {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            **self.headers,
            # Captured deliveries carry the trigger time of their recording (2024, 2026): sent
            # now, Shopify would stamp now, and the console's freshness is measured from it.
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "X-Shopify-Topic": self.topic,
            "X-Shopify-Shop-Domain": self.shop,
            "X-Shopify-Webhook-Id": self.webhook_id,
            "X-Shopify-Hmac-Sha256": signature,
        }


def find_fixtures() -> Path | None:
    """The shared real-data folder (SHOPSYNC_FIXTURES, else ../shared/fixtures), or None."""
    candidate = Path(os.environ.get("SHOPSYNC_FIXTURES") or ROOT.parent / "shared" / "fixtures")
    if (candidate / "webhooks").is_dir():
        print(f"real Shopify data from {candidate}")
        return candidate
    return None


def build(fixtures: Path | None, demo_shop: str) -> list[Delivery]:
    plan = real_deliveries(fixtures) if fixtures else []
    plan += derived_deliveries(demo_shop)
    if plan:
        # Repeat and forge the best HMAC vector we have (feeder8's raw bytes), else the first.
        first = next((d for d in plan if "feeder8" in d.label), plan[0])
        plan.append(
            Delivery(
                f"{first.label} (again)",
                first.topic,
                first.shop,
                first.body,
                webhook_id=first.webhook_id,
                headers=first.headers,
                repeat=True,
            )
        )
        plan.append(
            Delivery(f"{first.label} (forged signature)", first.topic, first.shop, first.body, forged=True)
        )
    return plan


def real_deliveries(fixtures: Path) -> list[Delivery]:
    """Every captured body in webhooks/, with its captured headers where we have them."""
    plan = []
    for path in sorted((fixtures / "webhooks").glob("*.json")):
        if path.name.endswith("__headers.json"):
            continue
        prefix, source = path.name.removesuffix(".json").split("__")[:2]
        topic = TOPICS.get(prefix)
        if topic is None:
            continue
        headers = _captured_headers(path)
        shop = headers.pop("X-Shopify-Shop-Domain", f"{source.split('_')[0]}.myshopify.com")
        webhook_id = headers.pop("X-Shopify-Webhook-Id", str(uuid.uuid4()))
        plan.append(
            Delivery(path.name, topic, shop, path.read_bytes(), webhook_id=webhook_id, headers=headers)
        )
    return plan


def _captured_headers(body_path: Path) -> dict[str, str]:
    stem = body_path.name.removesuffix(".json").removesuffix("__raw_body").removesuffix("__body")
    header_path = body_path.with_name(f"{stem}__headers.json")
    if not header_path.exists():
        return {}
    keep = (
        "X-Shopify-Shop-Domain",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Event-Id",
        "X-Shopify-Triggered-At",
        "X-Shopify-API-Version",
        "X-Shopify-Product-Id",
    )
    raw = {k.lower(): v for k, v in json.loads(header_path.read_text()).items()}
    return {name: raw[name.lower()] for name in keep if name.lower() in raw}


def derived_deliveries(demo_shop: str) -> list[Delivery]:
    """Changes a merchant of the imported catalog would make, as Shopify would deliver them."""
    from catalog.models import Product

    active = Product.objects.filter(shop__domain=demo_shop, status="active").order_by("id")
    products = list(active.filter(product_type__iexact="wig")[:2]) or list(active[:2])
    if len(products) < 2:
        return []
    edited, removed = products
    now = datetime.now(UTC).replace(microsecond=0)
    new_title = f"{edited.title} Limited Edition"
    update = _rest_payload(edited, DERIVED_ID_BASE + 1, now, title=new_title)
    stale = _rest_payload(
        edited, DERIVED_ID_BASE + 1, now - timedelta(hours=3), title=f"{edited.title} (old)"
    )
    linked = _rest_payload(removed, DERIVED_ID_BASE + 2, now)
    level = {
        "inventory_item_id": update["variants"][0]["inventory_item_id"],
        "location_id": 90_000_001,
        "available": 12,
        "updated_at": now.isoformat(),
    }
    return [
        Delivery(
            f"edit: rename {edited.handle}",
            "products/update",
            demo_shop,
            _dumps(update),
            search_after="limited edition",
        ),
        Delivery(
            f"late retry of an older edit of {edited.handle}", "products/update", demo_shop, _dumps(stale)
        ),
        Delivery(
            f"stock: 12 at a location for {edited.handle}",
            "inventory_levels/update",
            demo_shop,
            _dumps(level),
        ),
        Delivery(
            f"order: 5 x {edited.handle}",
            "orders/create",
            demo_shop,
            _dumps(_order(DERIVED_ID_BASE + 11, now, update["variants"][0], 5)),
        ),
        Delivery(f"first webhook for {removed.handle}", "products/update", demo_shop, _dumps(linked)),
        Delivery(
            f"delete {removed.handle}", "products/delete", demo_shop, _dumps({"id": DERIVED_ID_BASE + 2})
        ),
    ]


def _order(order_id: int, created_at: datetime, variant: dict, quantity: int) -> dict:
    """An orders/create body with the fields the sales signal reads (trend scoring)."""
    return {
        "id": order_id,
        "created_at": created_at.isoformat(),
        "line_items": [
            {
                "id": order_id * 10,
                "product_id": variant["product_id"],
                "variant_id": variant["id"],
                "quantity": quantity,
                "price": variant["price"],
                "sku": variant["sku"],
                "title": "demo order line",
            }
        ],
    }


def _rest_payload(product, shopify_id: int, updated_at: datetime, *, title: str | None = None) -> dict:
    variants = [
        {
            "id": shopify_id * 10 + i,
            "product_id": shopify_id,
            "title": v.title,
            "price": str(v.price or "0"),
            "sku": v.sku,
            "position": v.position,
            "inventory_item_id": shopify_id * 100 + i,
            "inventory_quantity": v.inventory_quantity,
            "inventory_policy": v.inventory_policy,
            **{f"option{n}": value for n, value in enumerate(v.option_values, 1)},
        }
        for i, v in enumerate(product.variants.all(), 1)
    ]
    return {
        "id": shopify_id,
        "admin_graphql_api_id": f"gid://shopify/Product/{shopify_id}",
        "title": title or product.title,
        "body_html": product.body_html,
        "vendor": product.vendor,
        "product_type": product.product_type,
        "handle": product.handle,
        "tags": ", ".join(product.tags),
        "status": product.status,
        "updated_at": updated_at.isoformat(),
        "variants": variants,
        "options": product.options,
        "images": [{"src": src} for src in product.images],
    }


def _dumps(payload: dict) -> bytes:
    # Shopify escapes "/" as "\/": keep its byte shape so the HMAC covers the same kind of body.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/").encode()


def report(plan: list[Delivery]) -> None:
    from sync.models import WebhookEvent

    for delivery in plan:
        if delivery.status == 401:
            what = "refused: HTTP 401, bad signature, nothing stored"
        elif delivery.repeat:
            what = f"duplicate: HTTP {delivery.status}, same X-Shopify-Webhook-Id, not processed again"
        else:
            event = WebhookEvent.objects.filter(
                shop_domain=delivery.shop, webhook_id=delivery.webhook_id
            ).first()
            if event is None:
                what = f"HTTP {delivery.status}, not stored"
            else:
                detail = event.note or event.error
                what = f"HTTP {delivery.status} -> {event.outcome or event.status}" + (
                    f" ({detail})" if detail else ""
                )
        print(f"  {delivery.topic:<24} {_short(delivery.label):<52} {what}")


def _short(label: str) -> str:
    """A fixture name without the parts every name shares, so labels stay distinct and short."""
    for suffix in (".json", "__raw_body", "__body"):
        label = label.replace(suffix, "")
    for prefix in TOPICS:
        label = label.removeprefix(f"{prefix}__")
    return label if len(label) <= 52 else label[:51] + "…"
