"""Index health as the pipeline sees it: paused (feed blocked), degraded (retryable errors), and
recovery, which puts the waiting backlog back in line as soon as the index accepts writes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from search.backends import get_backend
from search.backends.base import IndexError_

from .models import IndexHealth, WebhookEvent

logger = logging.getLogger("shopsync.pipeline")
# A blocked index (507, disk full) refuses everything: stop writing for this long, then probe.
BLOCKED_PAUSE_SECONDS = 60.0
# The backlog is made due again only after this long without a failed write (and a good probe).
RECOVERY_QUIET_SECONDS = 15.0


def index_paused() -> bool:
    return IndexHealth.objects.filter(alias=settings.SEARCH_BACKEND, paused_until__gt=timezone.now()).exists()


def index_pause(error: str) -> datetime:
    """Feed blocked: pause writes and alert. Returns when writing may be tried again."""
    now = timezone.now()
    until = now + timedelta(seconds=BLOCKED_PAUSE_SECONDS)
    IndexHealth.objects.update_or_create(
        alias=settings.SEARCH_BACKEND,
        defaults={"paused_until": until, "degraded_since": now, "last_error": error, "last_error_at": now},
    )
    logger.error(
        "ALERT index %r refuses writes (feed blocked): %s; writes paused until %s",
        settings.SEARCH_BACKEND,
        error,
        until.isoformat(),
    )
    return until


def index_degraded(error: str) -> None:
    """A retryable index error: remember it, so recovery can be noticed and acted on."""
    now = timezone.now()
    health, created = IndexHealth.objects.get_or_create(
        alias=settings.SEARCH_BACKEND,
        defaults={"degraded_since": now, "last_error": error, "last_error_at": now},
    )
    if not created:
        IndexHealth.objects.filter(pk=health.pk).update(
            degraded_since=health.degraded_since or now, last_error=error, last_error_at=now
        )


def index_recover_if_healthy() -> int:
    """If the index was failing and now answers, make every backed-off event due again at once
    (their backoff was about the index, which is back). Returns how many were made due."""
    health = IndexHealth.objects.filter(alias=settings.SEARCH_BACKEND, degraded_since__isnull=False).first()
    now = timezone.now()
    if health is None or (health.paused_until and health.paused_until > now):
        return 0
    if health.last_error_at and health.last_error_at > now - timedelta(seconds=RECOVERY_QUIET_SECONDS):
        # A probe can pass while writes still fail (429 throttling): waking the backlog on every
        # probe would skip its backoff. Only a quiet spell with no failed write counts as back.
        return 0
    try:
        get_backend().ping()
    except IndexError_:
        return 0
    woken = WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING, next_attempt_at__gt=now).update(
        next_attempt_at=now
    )
    IndexHealth.objects.filter(pk=health.pk).update(degraded_since=None, paused_until=None)
    logger.warning(
        "index %r accepts writes again: %d waiting event(s) made due", settings.SEARCH_BACKEND, woken
    )
    return woken
