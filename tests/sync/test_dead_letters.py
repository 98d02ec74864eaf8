"""Nothing is dropped: permanent failures and exhausted retries end in the DLQ and replay from it."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from catalog.models import Product
from sync.dlq import dead_letter_discard
from sync.health import RECOVERY_QUIET_SECONDS
from sync.models import DeadLetter, IndexHealth, WebhookEvent
from sync.pipeline import drain
from sync.tasks import replay_dead_letters
from tests.conftest import post_webhook, webhook_body

pytestmark = pytest.mark.django_db
FEEDER8 = "products_update__feeder8_2024-01__raw_body.json"


def _make_due() -> None:
    WebhookEvent.objects.filter(status="pending").update(next_attempt_at=timezone.now())


def test_exhausted_retries_are_dead_lettered_and_replay_applies_them(client, settings, index_faults):
    settings.SYNC_MAX_ATTEMPTS = 3
    index_faults.fail("retryable", "503 Service Unavailable")
    post_webhook(client, webhook_body(FEEDER8), webhook_id="e")
    for _ in range(3):
        drain()
        _make_due()
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("dead", 3)
    letter = DeadLetter.objects.get()
    assert (letter.kind, letter.error_class) == ("exhausted", "IndexError_")
    assert "503" in letter.error and letter.next_replay_at > timezone.now()

    index_faults.heal()  # the index is back
    out = io.StringIO()
    call_command("replay_dlq", "--all", stdout=out)
    assert "replayed 1 of 1" in out.getvalue()
    assert drain().outcomes == {"applied": 1}
    letter.refresh_from_db()
    assert letter.resolved_at is not None and letter.resolution == "applied after replay"
    assert Product.objects.filter(shopify_id=9079211262258).exists()


def test_replay_of_a_still_broken_payload_updates_the_same_letter(client):
    post_webhook(client, json.dumps({"id": 1}).encode(), webhook_id="bad")
    drain()
    call_command("replay_dlq", "--id", str(DeadLetter.objects.get().pk), stdout=io.StringIO())
    drain()
    letter = DeadLetter.objects.get()
    assert (letter.failures, letter.replays, letter.resolved_at) == (2, 1, None)


def test_scheduled_replay_takes_only_due_letters(client):
    post_webhook(client, json.dumps({"id": 1}).encode(), webhook_id="bad")
    drain()
    assert replay_dead_letters() == "replayed 0 of 0"
    DeadLetter.objects.update(next_replay_at=timezone.now())
    assert replay_dead_letters() == "replayed 1 of 1"


def test_discarded_letters_are_not_replayed(client):
    post_webhook(client, json.dumps({"id": 1}).encode(), webhook_id="bad")
    drain()
    letter = DeadLetter.objects.get()
    assert dead_letter_discard(ids=[letter.pk]) == 1
    out = io.StringIO()
    call_command("replay_dlq", "--all", stdout=out)
    assert out.getvalue().strip() == "replayed 0 of 0: nothing to replay"


def test_replay_of_unknown_id_is_a_clear_error():
    with pytest.raises(CommandError, match="no dead letter with id 999"):
        call_command("replay_dlq", "--id", "999")


def test_feed_blocked_pauses_writes_without_spending_attempts(client, index_faults):
    index_faults.fail("blocked", "507 feed blocked: disk limit reached")
    post_webhook(client, webhook_body(FEEDER8), webhook_id="a")
    post_webhook(client, json.dumps({**json.loads(webhook_body(FEEDER8)), "id": 2}).encode(), webhook_id="b")
    stats = drain()
    assert stats.processed == 0 and stats.paused
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {("pending", 0)}
    health = IndexHealth.objects.get()
    assert "feed blocked" in health.last_error and health.paused_until > timezone.now()
    assert drain().processed == 0  # still paused: nothing is claimed

    index_faults.heal()
    IndexHealth.objects.update(paused_until=timezone.now())
    _make_due()
    assert drain().outcomes == {"applied": 2}
    assert not DeadLetter.objects.exists()


def test_backlog_drains_by_itself_once_the_index_is_back(client, index_faults):
    for n in range(50):
        body = {**json.loads(webhook_body(FEEDER8)), "id": 1000 + n, "handle": f"p{n}"}
        post_webhook(client, json.dumps(body).encode(), webhook_id=f"e{n}")
    index_faults.fail("retryable", "503 Service Unavailable")
    assert drain().retried == 50
    assert drain().processed == 0  # backing off; the index still refuses
    assert IndexHealth.objects.get().degraded_since is not None

    index_faults.heal()  # no operator action from here on: the next drain (the sweep) notices
    assert drain().processed == 0  # writes failed a moment ago: not yet trusted to be back
    quiet = timezone.now() - timedelta(seconds=RECOVERY_QUIET_SECONDS + 1)
    IndexHealth.objects.update(last_error_at=quiet)  # a quiet spell passes
    stats = drain()
    assert stats.outcomes == {"applied": 50}
    assert IndexHealth.objects.get().degraded_since is None
    assert not WebhookEvent.objects.exclude(status="done").exists()


def test_a_probe_that_passes_while_writes_fail_does_not_skip_backoff(client, index_faults, monkeypatch):
    """Throttling (429) refuses writes while reads and probes pass: retries keep their backoff."""
    from search.backends.embedded import EmbeddedBackend

    index_faults.fail("retryable", "429 Too Many Requests")
    monkeypatch.setattr(EmbeddedBackend, "ping", lambda self: None)  # the probe says all is well
    post_webhook(client, webhook_body(FEEDER8), webhook_id="e")
    for _ in range(10):
        drain()
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts) == ("pending", 1)
    assert not DeadLetter.objects.exists()
