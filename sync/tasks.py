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


def reconcile_all_shops() -> str:
    """Scheduled daily: repair drift between the stored truth and the index, shop by shop."""
    from catalog.models import Shop

    from .reconcile import reconcile_shop

    reports = [reconcile_shop(shop=shop, repair=True) for shop in Shop.objects.all()]
    return ", ".join(f"{r.shop}: repaired {r.repaired}" for r in reports) or "no shops"


def sync_run_execute(run_id: int) -> str:
    """A backfill or reconcile run started from the admin."""
    from .actions import sync_run_execute as execute

    return execute(run_id=run_id).summary
