"""django-q2 tasks: thin wrappers that call one service. Safe to run twice."""

from __future__ import annotations

from .pipeline import drain
from .queue import DRAIN_IDLE_SECONDS


def drain_pending() -> dict[str, int]:
    """Drain pending webhook events, then keep polling briefly for stragglers."""
    return drain(idle_seconds=DRAIN_IDLE_SECONDS).as_dict()


def replay_dead_letters() -> str:
    """Scheduled every 15 minutes: replay dead letters whose next replay time has come."""
    from .dlq import dead_letter_replay

    return str(dead_letter_replay(due_only=True))
