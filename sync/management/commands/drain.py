"""manage.py drain: process every pending webhook event now, print what happened, exit."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from sync.models import WebhookEvent
from sync.pipeline import drain


class Command(BaseCommand):
    help = "Process pending webhook events synchronously and exit (for the demo and for ops)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=None, help="events claimed per batch")
        parser.add_argument("--verbose-events", action="store_true", help="print one line per event")

    def handle(self, *args, batch_size: int | None, verbose_events: bool, **options) -> None:
        pending = WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).count()
        self.stdout.write(f"draining {pending} pending event(s)")
        on_event = self._print_event if verbose_events else None
        stats = drain(batch_size=batch_size, on_event=on_event)
        summary = ", ".join(f"{k} {v}" for k, v in sorted(stats.outcomes.items())) or "nothing to do"
        self.stdout.write(f"processed {stats.processed}: {summary}; {stats.retried} scheduled for retry")
        left = WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).count()
        if left:
            self.stdout.write(f"{left} event(s) wait for a later retry (see their error in the admin)")

    def _print_event(self, event: WebhookEvent) -> None:
        detail = event.note or event.error
        self.stdout.write(f"  #{event.pk} {event.topic:<24} {event.outcome or event.status:<8} {detail}")
