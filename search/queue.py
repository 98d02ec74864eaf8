"""Debounced, on-commit wake-ups of the derived-signal workers (embedding, scoring).

Like the drain's wake-ups (sync/queue.py) they carry no data: the database says what is pending
(products whose text hash moved past their vector's, products with `trend_requested_at` set), so
a lost message loses nothing (a schedule sweeps) and a duplicate finds nothing left to do. A
batch of hundreds of changed products therefore sends one message, not hundreds.
"""

from __future__ import annotations

import threading
import time

from django.db import transaction

WAKEUP_DEBOUNCE_SECONDS = 1.0
EMBED_TASK = "search.tasks.embed_pending"
RESCORE_TASK = "scoring.tasks.rescore_requested"

_last: dict[str, float] = {}
_lock = threading.Lock()


def wakeup_on_commit(task: str) -> None:
    """Ask a worker to run `task` (a dotted path, no arguments) once the transaction commits."""
    transaction.on_commit(lambda: _send(task))


def _send(task: str) -> None:
    now = time.monotonic()
    with _lock:
        if now - _last.get(task, -WAKEUP_DEBOUNCE_SECONDS) < WAKEUP_DEBOUNCE_SECONDS:
            return
        _last[task] = now
    from django_q.tasks import async_task  # imported late: django_q needs the app registry

    async_task(task, task_name=task.rsplit(".", 1)[-1], group=task, save=False)


def reset_debounce() -> None:
    with _lock:
        _last.clear()
