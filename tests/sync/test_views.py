"""Webhook ingress over HTTP: authenticity, malformed input, size limit, deduplication."""

from __future__ import annotations

import json
import logging
import threading

import pytest
from django.db import connection
from django.test import Client

from catalog.models import Product
from sync.models import WebhookEvent
from sync.pipeline import drain
from sync.security import sign
from tests.conftest import PREVIOUS_SECRET, post_webhook, webhook_body

FEEDER8 = "products_update__feeder8_2024-01__raw_body.json"
pytestmark = pytest.mark.django_db


def test_raw_feeder8_body_verifies_byte_for_byte(client):
    body = webhook_body(FEEDER8)
    assert len(body) == 4388 and body.count(rb"\/") == 72
    response = post_webhook(client, body, webhook_id="12815508-f11e-41d0-af97-dba11f47b294")
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert bytes(event.body) == body
    assert event.topic == "products/update" and event.shop.domain == "feeder8.myshopify.com"
    assert event.status == WebhookEvent.Status.PENDING


@pytest.mark.parametrize(
    ("fixture", "topic", "key"),
    [
        (FEEDER8, "products/update", "id"),
        ("products_delete__shopify-documented-example__raw_body.json", "products/delete", "id"),
        (
            "inventory_levels_update__swordfox-wiw_2020-05__raw_body.json",
            "inventory_levels/update",
            "inventory_item_id",
        ),
        ("orders_create__membi-devstore_2025-01__body.json", "orders/create", "id"),
    ],
)
def test_ingest_records_what_the_delivery_is_about(client, fixture, topic, key):
    body = webhook_body(fixture)
    assert post_webhook(client, body, topic=topic).status_code == 200
    assert WebhookEvent.objects.get().subject_id == int(json.loads(body)[key])


@pytest.mark.parametrize(
    "body",
    [b'{"id": "not a number"}', b'{"id": true}', b'{"no_id": 1}', b'{"id": -4}', '{"id": "\u00b2"}'.encode()],
)
def test_a_delivery_without_a_usable_id_is_stored_without_a_subject(client, body):
    assert post_webhook(client, body, topic="products/update").status_code == 200
    assert WebhookEvent.objects.get().subject_id is None


def test_reserialized_body_fails_verification(client, caplog):
    body = webhook_body(FEEDER8)
    reserialized = json.dumps(json.loads(body)).encode()
    signature = sign(body, "test-secret-current")  # signed over Shopify's bytes, as Shopify does
    with caplog.at_level(logging.WARNING, logger="shopsync.webhooks"):
        response = post_webhook(client, reserialized, signature=signature)
    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0
    line = next(r.getMessage() for r in caplog.records if r.name == "shopsync.webhooks")
    assert "feeder8.myshopify.com" in line and "products/update" in line
    assert f"body_bytes={len(reserialized)}" in line and "body_sha256=" in line


@pytest.mark.parametrize(
    "signature",
    ["", "not base64!!", "aGVsbG8=", "ÄÖÜ" * 15, "IYSq0SDPgr4Qu3JfMWl2vctQ5ELGrLoJcBTfZxahzE\u00e9="],
    ids=["empty", "not-base64", "wrong-length", "non-ascii", "non-ascii-tail"],
)
def test_malformed_signature_is_401_not_500(client, signature):
    response = post_webhook(client, webhook_body(FEEDER8), signature=signature)
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid webhook signature"}
    assert WebhookEvent.objects.count() == 0


def test_non_ascii_signature_header_bytes_are_401():
    # A header carrying raw non-ASCII bytes reaches Django as latin-1 text.
    client = Client()
    body = webhook_body(FEEDER8)
    response = post_webhook(client, body, signature=b"\xff\xfe\xc3\xa9abc=".decode("latin-1"))
    assert response.status_code == 401


def test_missing_signature_is_401(client):
    body = webhook_body(FEEDER8)
    response = client.generic(
        "POST",
        "/webhooks/shopify",
        body,
        content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC="products/update",
        HTTP_X_SHOPIFY_SHOP_DOMAIN="feeder8.myshopify.com",
    )
    assert response.status_code == 401


def test_previous_secret_is_accepted_during_rotation(client):
    response = post_webhook(client, webhook_body(FEEDER8), secret=PREVIOUS_SECRET)
    assert response.status_code == 200


def test_unknown_secret_is_refused(client):
    assert post_webhook(client, webhook_body(FEEDER8), secret="someone-else").status_code == 401


def test_per_shop_secret_overrides_global(client):
    from catalog.models import Shop

    Shop.objects.create(domain="feeder8.myshopify.com", webhook_secret="shop-own-secret")
    body = webhook_body(FEEDER8)
    assert post_webhook(client, body).status_code == 401  # the global secret no longer counts
    assert post_webhook(client, body, secret="shop-own-secret").status_code == 200


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        ("HTTP_X_SHOPIFY_TOPIC", "missing X-Shopify-Topic"),
        ("HTTP_X_SHOPIFY_SHOP_DOMAIN", "missing X-Shopify-Shop-Domain"),
    ],
)
def test_missing_required_header_is_400_and_kept(client, drop, reason):
    body = webhook_body(FEEDER8)
    headers = {
        "HTTP_X_SHOPIFY_TOPIC": "products/update",
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": "feeder8.myshopify.com",
        "HTTP_X_SHOPIFY_HMAC_SHA256": sign(body, "test-secret-current"),
    }
    del headers[drop]
    response = client.generic("POST", "/webhooks/shopify", body, content_type="application/json", **headers)
    assert response.status_code == 400
    assert reason in response.json()["detail"]
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.REJECTED and reason in event.error
    assert bytes(event.body) == body


def test_verified_body_that_is_not_json_is_400_and_kept(client):
    body = b'{"id": 1, "title": "cut off'
    response = post_webhook(client, body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("body is not JSON")
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.REJECTED and bytes(event.body) == body
    assert drain().processed == 0  # kept for inspection, never processed


def test_body_over_limit_is_413(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = settings.WEBHOOK_MAX_BODY_BYTES = 1000
    response = post_webhook(client, webhook_body(FEEDER8))
    assert response.status_code == 413
    assert "1000-byte limit" in response.json()["detail"]
    assert WebhookEvent.objects.count() == 0


def test_default_limit_admits_a_large_product(client):
    product = json.loads(webhook_body(FEEDER8))
    product["variants"] = product["variants"] * 1400  # ~3 MB: above Django's 2.5 MB default
    body = json.dumps(product).encode()
    assert 2_621_440 < len(body) < 5 * 1024 * 1024
    assert post_webhook(client, body).status_code == 200


def test_optional_headers_are_stored_when_present(client):
    response = post_webhook(
        client,
        webhook_body(FEEDER8),
        extra={
            "HTTP_X_SHOPIFY_EVENT_ID": "a2533945",
            "HTTP_X_SHOPIFY_TRIGGERED_AT": "2024-05-06T10:45:17.912552336Z",
        },
    )
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.event_id == "a2533945"
    assert event.triggered_at.isoformat() == "2024-05-06T10:45:17.912552+00:00"
    assert event.headers["X-Shopify-Triggered-At"] == "2024-05-06T10:45:17.912552336Z"


def test_repeated_webhook_id_is_200_and_stored_once(client):
    body = webhook_body(FEEDER8)
    first = post_webhook(client, body, webhook_id="dup-1")
    second = post_webhook(client, body, webhook_id="dup-1")
    assert first.status_code == second.status_code == 200
    assert second.json()["detail"].startswith("duplicate")
    event = WebhookEvent.objects.get()
    assert event.duplicate_deliveries == 1


@pytest.mark.django_db(transaction=True)
def test_two_identical_deliveries_in_parallel_store_and_apply_once():
    body = webhook_body(FEEDER8)
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def deliver() -> None:
        try:
            barrier.wait()
            statuses.append(post_webhook(Client(), body, webhook_id="same-instant").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    assert WebhookEvent.objects.count() == 1
    stats = drain()
    assert stats.outcomes == {"applied": 1}
    assert Product.objects.filter(shopify_id=9079211262258).count() == 1
