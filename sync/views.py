"""Webhook ingress: read the raw body, verify, persist, enqueue, answer. Nothing else.

Shopify gives us 5 seconds and retries on anything but 2xx, so this path does no sync work: one
INSERT, and the worker does the rest.
"""

from __future__ import annotations

import hashlib
import logging

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from .security import decode_signature, verify
from .services import SHOP_DOMAIN, Delivery, shop_get_or_create, shop_lookup, webhook_event_record

logger = logging.getLogger("shopsync.webhooks")


class ShopifyWebhookView(APIView):
    """POST /webhooks/shopify: every Shopify topic arrives here (routing is by X-Shopify-Topic)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request, *args, **kwargs) -> JsonResponse:
        raw: HttpRequest = request._request  # the raw bytes, before any parser touches them
        try:
            body = raw.body
        except RequestDataTooBig:
            limit = settings.WEBHOOK_MAX_BODY_BYTES
            return _answer(413, f"body larger than the {limit}-byte limit (WEBHOOK_MAX_BODY_BYTES)")
        delivery = _delivery(raw, body)
        shop = shop_lookup(delivery.shop_domain) if SHOP_DOMAIN.match(delivery.shop_domain) else None
        secrets = shop.accepted_secrets() if shop else settings.SHOPIFY_WEBHOOK_SECRETS
        signature = decode_signature(raw.headers.get("X-Shopify-Hmac-Sha256"))
        if signature is None or not verify(body, signature, secrets):
            _log_refused(delivery, "missing or malformed signature" if signature is None else "bad signature")
            return _answer(401, "invalid webhook signature")

        reason, payload = _malformed(delivery, body)
        if reason is None and shop is None:
            shop = shop_get_or_create(domain=delivery.shop_domain)
        event, created = webhook_event_record(
            shop=shop, delivery=delivery, rejected_reason=reason or "", payload=payload
        )
        if reason:
            logger.warning(
                "webhook rejected: %s (event %s, shop=%s)", reason, event and event.pk, delivery.shop_domain
            )
            return _answer(400, reason)
        return _answer(200, "stored" if created else "duplicate delivery, already stored")


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _delivery(raw: HttpRequest, body: bytes) -> Delivery:
    headers = raw.headers
    return Delivery(
        shop_domain=headers.get("X-Shopify-Shop-Domain", "").strip().lower(),
        topic=headers.get("X-Shopify-Topic", "").strip().lower(),
        webhook_id=headers.get("X-Shopify-Webhook-Id", "").strip() or None,
        event_id=headers.get("X-Shopify-Event-Id", "").strip(),
        triggered_at=headers.get("X-Shopify-Triggered-At", "").strip(),
        api_version=headers.get("X-Shopify-Api-Version", "").strip(),
        headers={k: v for k, v in headers.items() if k.lower() != "cookie"},
        body=body,
    )


def _malformed(delivery: Delivery, body: bytes) -> tuple[str | None, dict | None]:
    """Why a verified delivery cannot be processed (None if it can), and its parsed body. Such
    deliveries are kept, not queued."""
    if not delivery.topic:
        return "missing X-Shopify-Topic header", None
    if not delivery.shop_domain:
        return "missing X-Shopify-Shop-Domain header", None
    if not SHOP_DOMAIN.match(delivery.shop_domain):
        return f"X-Shopify-Shop-Domain {delivery.shop_domain!r} is not a *.myshopify.com domain", None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return f"body is not JSON: {exc}", None
    if not isinstance(payload, dict):
        return f"body must be a JSON object, got {type(payload).__name__}", None
    return None, payload


def _log_refused(delivery: Delivery, reason: str) -> None:
    # Enough to correlate with Shopify's delivery log, never the body or any secret.
    logger.warning(
        "webhook refused (401): %s shop=%r topic=%r webhook_id=%r body_bytes=%d body_sha256=%s",
        reason,
        delivery.shop_domain,
        delivery.topic,
        delivery.webhook_id,
        len(delivery.body),
        hashlib.sha256(delivery.body).hexdigest(),
    )


def _answer(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)
