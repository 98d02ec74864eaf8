"""manage.py import_signals --from-file PATH --shop DOMAIN: external trend signals from CSV."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from catalog.models import Shop
from scoring.services import external_signals_import


class Command(BaseCommand):
    help = (
        "Import external signals (competitor prices, social mentions): handle,kind,value,observed_at[,source]"
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--from-file", type=Path, required=True)
        parser.add_argument("--shop", required=True)

    def handle(self, *args, from_file: Path, shop: str, **options) -> None:
        if not from_file.is_file():
            raise CommandError(f"no such file: {from_file}")
        shop_obj = Shop.objects.filter(domain=shop).first()
        if shop_obj is None:
            raise CommandError(f"unknown shop {shop!r}")
        report = external_signals_import(path=from_file, shop=shop_obj)
        for error in report.errors:
            self.stderr.write(f"  skipped {error}")
        self.stdout.write(
            f"{report.imported} signals imported, {report.skipped} already known, {len(report.errors)} errors"
        )
        if report.errors:
            raise CommandError(f"{len(report.errors)} row(s) could not be imported", returncode=2)
