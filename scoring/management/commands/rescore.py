"""manage.py rescore [--all | --since DATE | --product ID] [--shop DOMAIN] [--scorer local|llm] [--dry-run]"""

from __future__ import annotations

import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from catalog.models import Product, Shop
from catalog.normalize.fields import parse_day_or_datetime
from catalog.normalize.types import NormalizationError
from scoring.services import SCORERS, products_rescore


class Command(BaseCommand):
    help = "Recompute trend scores and write them to the index."

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--all", action="store_true", help="every live product, even when unchanged")
        which.add_argument("--since", help="products changed since DATE (YYYY-MM-DD or ISO time, UTC)")
        which.add_argument("--product", type=int, help="one product (its database id), even when unchanged")
        which.add_argument("--changed", action="store_true", help="products whose signals changed")
        parser.add_argument("--shop", help="only this shop (*.myshopify.com)")
        parser.add_argument("--scorer", choices=SCORERS, help="default: SCORING_SCORER")
        parser.add_argument("--dry-run", action="store_true", help="compute and print, store nothing")

    def handle(self, *args, **options) -> None:
        products, force = self._products(options)
        started = time.monotonic()
        stats = products_rescore(
            products,
            scorer=options["scorer"],
            force=force,
            dry_run=options["dry_run"],
            progress=lambda done, total: self.stdout.write(f"  {done} of {total} products"),
        )
        if options["dry_run"]:
            titles = dict(
                Product.objects.filter(pk__in=[pk for pk, _ in stats.scores]).values_list("pk", "title")
            )
            for pk, score in sorted(stats.scores, key=lambda row: -row[1])[:20]:
                self.stdout.write(f"  {score:.3f}  {titles.get(pk, pk)}")
        prefix = "dry run: " if options["dry_run"] else ""
        summary = (
            f"{prefix}{stats.considered} considered, {stats.scored} scored, "
            f"{stats.unchanged} unchanged, {stats.fallbacks} llm fallbacks, {stats.llm_calls} llm calls "
            f"in {time.monotonic() - started:.1f}s"
        )
        self.stdout.write(self.style.SUCCESS(summary))
        for reason, count in stats.fallback_reasons.most_common():
            self.stdout.write(self.style.WARNING(f"  fell back to the local scorer {count}x: {reason}"))

    def _products(self, options):
        products = Product.objects.live()
        if options["shop"]:
            if not Shop.objects.filter(domain=options["shop"]).exists():
                raise CommandError(f"unknown shop {options['shop']!r}")
            products = products.filter(shop__domain=options["shop"])
        if options["product"] is not None:
            products = products.filter(pk=options["product"])
            if not products.exists():
                raise CommandError(f"no live product with id {options['product']}")
            return products, True
        if options["since"]:
            return products.filter(modified_at__gte=_since(options["since"])), True
        return products, bool(options["all"])


def _since(value: str) -> datetime:
    try:
        parsed = parse_day_or_datetime(value, name="--since")
    except NormalizationError as exc:
        raise CommandError(f"--since must be a date or ISO time, got {value!r}") from exc
    if parsed is None:
        raise CommandError("--since needs a value")
    return parsed
