"""Claims: fair shares between shops, leases that expire when a worker dies."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from catalog.models import Shop
from sync.models import WebhookEvent
from sync.pipeline import claim_batch, drain

pytestmark = pytest.mark.django_db


def _pending(shop: Shop, count: int) -> None:
    now = timezone.now()
    WebhookEvent.objects.bulk_create(
        WebhookEvent(
            shop=shop,
            shop_domain=shop.domain,
            topic="collections/update",
            webhook_id=f"{shop.pk}-{n}",
            body=b"{}",
            received_at=now,
            next_attempt_at=now,
        )
        for n in range(count)
    )


def test_one_shops_storm_does_not_starve_another():
    storm, quiet = (
        Shop.objects.create(domain="storm.myshopify.com"),
        Shop.objects.create(domain="quiet.myshopify.com"),
    )
    _pending(storm, 300)  # arrived first
    _pending(quiet, 5)
    batch = claim_batch(100)
    assert len(batch) == 100
    assert sum(1 for e in batch if e.shop_id == quiet.pk) == 5


def test_event_of_a_dead_worker_is_claimed_again_after_its_lease():
    shop = Shop.objects.create(domain="a.myshopify.com")
    _pending(shop, 3)
    crashed = claim_batch(10)  # a worker claims, then dies without processing
    assert len(crashed) == 3 and claim_batch(10) == []  # leased: nobody else takes them
    WebhookEvent.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    stats = drain()
    assert stats.outcomes == {"skipped": 3}
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {("skipped", 2)}


def test_backed_off_events_wait_for_their_time():
    shop = Shop.objects.create(domain="a.myshopify.com")
    _pending(shop, 2)
    WebhookEvent.objects.filter(webhook_id__endswith="-0").update(
        next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    assert [e.webhook_id for e in claim_batch(10)] == [f"{shop.pk}-1"]


def test_a_live_lease_is_renewed_and_a_lapsed_one_left_to_whoever_has_it(settings):
    from sync.claims import leases_renew

    shop = Shop.objects.create(domain="a.myshopify.com")
    _pending(shop, 2)
    first, second = claim_batch(10)
    WebhookEvent.objects.filter(pk=second.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    settings.SYNC_LEASE_SECONDS = 600
    assert leases_renew([first, second]) == 1
    leases = dict(WebhookEvent.objects.values_list("pk", "lease_expires_at"))
    assert leases[first.pk] > timezone.now() + timedelta(seconds=500)
    assert leases[second.pk] < timezone.now()


def test_a_slow_batch_keeps_its_lease_between_steps(settings, monkeypatch):
    import sync.claims as claims
    import sync.pipeline as pipeline

    settings.SYNC_LEASE_SECONDS = 0.9  # a third of it passes while the first event is applied
    shop = Shop.objects.create(domain="a.myshopify.com")
    _pending(shop, 3)
    renewed = []
    real_renew, real_apply = claims.leases_renew, pipeline._apply

    def slow_apply(event, stats):
        time.sleep(0.35)
        return real_apply(event, stats)

    monkeypatch.setattr(pipeline, "_apply", slow_apply)
    monkeypatch.setattr(claims, "leases_renew", lambda events: renewed.append(real_renew(events)))
    assert drain().outcomes == {"skipped": 3}
    assert renewed and all(count > 0 for count in renewed)  # renewed while the events were still its own
