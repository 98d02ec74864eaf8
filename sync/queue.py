"""Wake-ups for the drain worker, sent only after the transaction that stored the work commits.

Messages carry no data: the WebhookEvent table is the truth, so a lost message loses nothing
(the periodic sweep and the next delivery wake the worker again) and a duplicate one finds
nothing left to do. That also lets the web process send at most one wake-up per
WAKEUP_DEBOUNCE_SECONDS: the drain task keeps polling for DRAIN_IDLE_SECONDS (longer than the
debounce) after its last event, so deliveries stored inside the debounce window are still seen.
"""

from __future__ import annotations

import threading
import time

from django.db import transaction

WAKEUP_DEBOUNCE_SECONDS = 0.5
DRAIN_IDLE_SECONDS = 2.0
_last_wakeup = 0.0
_lock = threading.Lock()


def drain_wakeup_on_commit() -> None:
    """Ask a worker to drain pending events once the current transaction commits."""
    transaction.on_commit(_send_wakeup)


def _send_wakeup() -> None:
    global _last_wakeup
    now = time.monotonic()
    with _lock:
        if now - _last_wakeup < WAKEUP_DEBOUNCE_SECONDS:
            return
        _last_wakeup = now
    from django_q.tasks import async_task  # imported late: django_q needs the app registry

    async_task("sync.tasks.drain_pending", task_name="drain", group="drain", save=False)


def reset_debounce() -> None:
    global _last_wakeup
    with _lock:
        _last_wakeup = 0.0
