"""manage.py reconcile --shop DOMAIN [--repair]: compare stored products with the index."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from catalog.models import Shop
from sync.reconcile import reconcile_shop

SHOW = 10  # ids listed per kind of drift; the counts are always complete


class Command(BaseCommand):
    help = (
        "Compare stored products with the index (count and per-document content hash); --repair fixes drift."
    )

    def add_arguments(self, parser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--shop", help="shop domain")
        target.add_argument("--all-shops", action="store_true")
        parser.add_argument(
            "--repair", action="store_true", help="rewrite differing/missing, remove extra documents"
        )

    def handle(self, *args, shop: str | None, all_shops: bool, repair: bool, **options) -> None:
        shops = Shop.objects.all() if all_shops else Shop.objects.filter(domain=shop)
        if shop and not shops.exists():
            raise CommandError(f"unknown shop {shop!r}")
        drifted = 0
        for shop_obj in shops:
            report = reconcile_shop(shop=shop_obj, repair=repair)
            drifted += report.drift - report.repaired
            self.stdout.write(
                f"{report.shop}: {report.products} live products, {report.documents} documents; "
                f"missing {len(report.missing)}, extra {len(report.extra)}, differing {len(report.differing)}"
                + (f"; repaired {report.repaired}" if repair else "")
            )
            for kind in ("missing", "extra", "differing"):
                ids = getattr(report, kind)
                if ids:
                    more = f" (+{len(ids) - SHOW} more)" if len(ids) > SHOW else ""
                    self.stdout.write(f"  {kind}: {', '.join(ids[:SHOW])}{more}")
        if drifted:
            raise CommandError(f"{drifted} document(s) drifted; run with --repair to fix", returncode=3)
