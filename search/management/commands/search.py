"""manage.py search "QUERY" [--shop DOMAIN] [--mode bm25|semantic|hybrid] [--json]: ranked results."""

from __future__ import annotations

import argparse

import orjson
from django.core.management.base import BaseCommand, CommandError

from catalog.models import Shop
from search.api import search_products
from search.backends.base import SEARCH_MODES


class Command(BaseCommand):
    help = "Search the index and print ranked products."

    def add_arguments(self, parser) -> None:
        parser.add_argument("query")
        parser.add_argument("--shop", help="shop domain (*.myshopify.com); all shops when omitted")
        parser.add_argument("--limit", type=_positive_int, default=10, help="results to show (1-100)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument(
            "--record-demand",
            action="store_true",
            help="count it as shopper demand in trend scoring (an operator's search is not, by default)",
        )
        parser.add_argument("--mode", choices=SEARCH_MODES, default="bm25", help="ranking (default bm25)")
        parser.add_argument(
            "--trend-boost", type=float, help="weight of the trend score (hybrid default from settings)"
        )

    def handle(
        self,
        *args,
        query: str,
        shop: str | None,
        limit: int,
        json: bool,
        mode: str,
        trend_boost: float | None,
        **options,
    ) -> None:
        if shop and not Shop.objects.filter(domain=shop).exists():
            known = ", ".join(Shop.objects.values_list("domain", flat=True)) or "none"
            raise CommandError(f"unknown shop {shop!r}; known: {known}")
        hits = search_products(
            query, shop=shop, limit=limit, mode=mode, trend_boost=trend_boost, log=options["record_demand"]
        )
        if json:
            rows = [
                {
                    "rank": i,
                    "score": round(h.score, 4),
                    **{k: v for k, v in h.document.items() if k != "embedding"},
                }
                for i, h in enumerate(hits, 1)
            ]
            self.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
            return
        if not hits:
            self.stdout.write(f"no results for {query!r}")
            return
        for rank, hit in enumerate(hits, 1):
            doc = hit.document
            price = f"{doc['price_min']:.2f}" if doc.get("price_min") is not None else "-"
            trend = f"  trend {doc['trend_score']:.2f}" if doc.get("trend_score") is not None else ""
            self.stdout.write(
                f"{rank:>2}. {hit.score:6.2f}  {doc['title']}  [{doc.get('vendor') or '-'}] {price}{trend}"
            )


def _positive_int(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100, got {number}")
    return number
