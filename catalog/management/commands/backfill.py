"""manage.py backfill --from-file PATH --shop DOMAIN: import a catalog export into the index."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.backfill import BATCH_SIZE, backfill_batches
from catalog.normalize import NormalizationError
from scoring.services import derived_work_request
from search.indexer import products_reindex
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
        shop_obj = shop_get_or_create(domain=shop)
        started = time.monotonic()
        totals: dict[str, int] = {}
        errors: list[str] = []
        items = indexed = 0
        try:
            for batch in backfill_batches(shop=shop_obj, path=from_file, batch_size=batch_size):
                indexed += products_reindex(batch.changed_product_ids)
                derived_work_request(batch.embed_changed, batch.score_changed_ids)
                items += batch.items
                errors += batch.errors
                for outcome, n in batch.outcomes.items():
                    totals[outcome] = totals.get(outcome, 0) + n
                for error in batch.errors:
                    self.stderr.write(f"  skipped {error}")
                self.stdout.write(f"  {items} products read, {indexed} indexed, {len(errors)} errors")
        except NormalizationError as exc:
            raise CommandError(str(exc)) from exc
        summary = ", ".join(f"{k} {v}" for k, v in sorted(totals.items())) or "nothing applied"
        finished = time.monotonic() - started
        line = (
            f"backfill of {from_file.name} into {shop}: {items} products read in {finished:.1f}s: "
            f"{summary}; {indexed} indexed; {len(errors)} errors"
        )
        self.stdout.write(self.style.WARNING(line) if errors else self.style.SUCCESS(line))
        if errors:
            # Everything else was imported; a non-zero exit lets scripts notice the skipped items.
            raise CommandError(f"{len(errors)} item(s) could not be imported (listed above)", returncode=2)
