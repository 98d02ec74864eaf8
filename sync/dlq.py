"""The dead-letter queue: record work that failed for good, replay it, resolve or discard it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import DeadLetter, WebhookEvent

# Scheduled replays back off: 15 min, 30 min, 1 h ... capped at a day, so a payload that can never
# apply does not churn forever while one that failed on a passing outage comes back soon.
REPLAY_FIRST_DELAY = timedelta(minutes=15)
REPLAY_MAX_DELAY = timedelta(days=1)


@dataclass(slots=True)
class ReplayResult:
    replayed: int = 0
    skipped: int = 0

    def __str__(self) -> str:
        total = self.replayed + self.skipped
        return f"replayed {self.replayed} of {total}" + (
            f" ({self.skipped} already resolved)" if self.skipped else ""
        )


def dead_letter_record(*, event: WebhookEvent, kind: str, error_class: str, error: str) -> DeadLetter:
    """Mark the event dead and keep (or update) its dead letter."""
    now = timezone.now()
    with transaction.atomic():
        WebhookEvent.objects.filter(pk=event.pk).update(
            status=WebhookEvent.Status.DEAD,
            outcome=WebhookEvent.Outcome.FAILED,
            error=error,
            processed_at=now,
            lease_expires_at=None,
        )
        letter, created = DeadLetter.objects.select_for_update().get_or_create(
            event=event,
            defaults={
                "shop_id": event.shop_id,
                "kind": kind,
                "error_class": error_class,
                "error": error,
                "first_failed_at": now,
                "last_failed_at": now,
                "next_replay_at": now + REPLAY_FIRST_DELAY,
            },
        )
        if not created:
            delay = min(REPLAY_MAX_DELAY, REPLAY_FIRST_DELAY * 2 ** min(letter.failures, 10))
            letter.kind, letter.error_class, letter.error = kind, error_class, error
            letter.failures += 1
            letter.last_failed_at, letter.next_replay_at = now, now + delay
            letter.resolved_at, letter.resolution = None, ""
            letter.save()
    event.status, event.outcome, event.error = WebhookEvent.Status.DEAD, WebhookEvent.Outcome.FAILED, error
    return letter


def dead_letter_replay(*, ids: list[int] | None = None, due_only: bool = False) -> ReplayResult:
    """Put dead events back in the queue (all open letters, the given ids, or those due)."""
    letters = DeadLetter.objects.all()
    if ids is not None:
        letters = letters.filter(pk__in=ids)
    if due_only:
        letters = letters.filter(next_replay_at__lte=timezone.now())
    result = ReplayResult()
    now = timezone.now()
    with transaction.atomic():
        open_letters = list(
            letters.select_for_update().filter(resolved_at__isnull=True).values_list("pk", "event_id")
        )
        if ids is not None:  # asked for by id: say which were already resolved
            result.skipped = letters.filter(resolved_at__isnull=False).count()
        pks = [pk for pk, _ in open_letters]
        DeadLetter.objects.filter(pk__in=pks).update(replays=F("replays") + 1, last_replayed_at=now)
        WebhookEvent.objects.filter(pk__in=[event_id for _, event_id in open_letters]).update(
            status=WebhookEvent.Status.PENDING,
            outcome="",
            attempts=0,
            next_attempt_at=now,
            lease_expires_at=None,
        )
        result.replayed = len(pks)
    if result.replayed:
        from .queue import drain_wakeup_on_commit

        drain_wakeup_on_commit()
    return result


def dead_letter_discard(*, ids: list[int]) -> int:
    """Give up on these entries for good: resolved as discarded; their events stay dead."""
    return DeadLetter.objects.filter(pk__in=ids, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolution="discarded", next_replay_at=None
    )


def dead_letter_resolve(*, event: WebhookEvent) -> None:
    """A replayed event went through: close its letter."""
    DeadLetter.objects.filter(Q(event=event) & Q(resolved_at__isnull=True)).update(
        resolved_at=timezone.now(), resolution=f"{event.outcome} after replay", next_replay_at=None
    )
