"""manage.py backfill --from-file PATH --shop DOMAIN: import a catalog export into the index."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.backfill import BATCH_SIZE, BatchResult, backfill_source_check
from catalog.normalize import NormalizationError
from sync.actions import sync_run_start
from sync.models import SyncRun
from sync.services import SHOP_DOMAIN, shop_get_or_create


class Command(BaseCommand):
    help = "Import products from a Shopify CSV export, a REST JSON file or bulk-operation JSONL."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from-file", required=True, type=Path, help=".csv, .json or .jsonl")
        parser.add_argument("--shop", required=True, help="shop domain, e.g. my-store.myshopify.com")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)

    def handle(self, *args, from_file: Path, shop: str, batch_size: int, **options) -> None:
        if not from_file.is_file():
            raise CommandError(f"no such file: {from_file}")
        if not SHOP_DOMAIN.match(shop):
            raise CommandError(f"--shop must be a *.myshopify.com domain, got {shop!r}")
        try:
            backfill_source_check(path=from_file)  # before the shop is made: a wrong file leaves nothing
        except NormalizationError as exc:
            raise CommandError(str(exc)) from exc
        started, self.skipped = time.monotonic(), 0
        # Recorded as a run (the console's Sync runs and dashboard show it, with its checkpoint).
        run = sync_run_start(
            shop=shop_get_or_create(domain=shop),
            kind=SyncRun.Kind.BACKFILL,
            source=str(from_file.resolve()),
            run_now=True,
            batch_size=batch_size,
            progress=self._progress,
        )
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(f"backfill run #{run.pk} {run.summary}")
        line = (
            f"backfill of {from_file.name} into {shop} (run #{run.pk}) in "
            f"{time.monotonic() - started:.1f}s: {run.summary}"
        )
        self.stdout.write(self.style.WARNING(line) if self.skipped else self.style.SUCCESS(line))
        if self.skipped:
            # Everything else was imported; a non-zero exit lets scripts notice the skipped items.
            raise CommandError(f"{self.skipped} item(s) could not be imported (listed above)", returncode=2)

    def _progress(self, run: SyncRun, batch: BatchResult) -> None:
        self.skipped += len(batch.errors)
        for error in batch.errors:
            self.stderr.write(f"  skipped {error}")
        for note in batch.notes:
            self.stdout.write(f"  {note}")
        indexed = run.counts.get("indexed", 0)
        self.stdout.write(f"  {run.cursor} products read, {indexed} indexed")
