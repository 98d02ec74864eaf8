"""manage.py replay_dlq [--id N ...] [--all] [--due]: put dead-lettered events back in the queue."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from sync.dlq import dead_letter_replay
from sync.models import DeadLetter


class Command(BaseCommand):
    help = "Replay dead-lettered webhook events (they are processed by the worker, or by `drain`)."

    def add_arguments(self, parser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--id", type=int, nargs="+", dest="ids", help="dead letter ids")
        group.add_argument("--all", action="store_true", help="every unresolved dead letter")
        group.add_argument("--due", action="store_true", help="those whose scheduled replay time has come")

    def handle(self, *args, ids: list[int] | None, all: bool, due: bool, **options) -> None:
        if ids:
            missing = sorted(
                set(ids) - set(DeadLetter.objects.filter(pk__in=ids).values_list("pk", flat=True))
            )
            if missing:
                raise CommandError(f"no dead letter with id {', '.join(map(str, missing))}")
        result = dead_letter_replay(ids=ids, due_only=due)
        if not result.replayed:
            self.stdout.write(f"{result}: nothing to replay" + (" yet (none is due)" if due else ""))
            return
        self.stdout.write(f"{result}; run `manage.py drain` or let the worker process them")
