"""Trend signals from data we really have, computed for a batch of products at once.

Each signal has a raw value (what a merchant can check), a normalized score in [0, 1] (what the
local scorer weighs) and the time it refers to (its newest input), so a score can be explained:

- `sales_velocity`: units sold per day from orders/create, each order decayed with a half-life of
  SALES_HALF_LIFE_DAYS (yesterday's sale counts more than last month's); score 1 - e^(-v / 0.5).
- `sell_through`: units sold in the last 30 days / (those + units in stock); needs known stock.
- `recency`: age since publication (or creation in Shopify), score 0.5^(age / RECENCY_HALF_LIFE_DAYS).
  A CSV export carries neither date: such a product counts as a year old until a webhook tells
  (the import's own time would make every imported product look brand new).
- `search_demand`: how often our own searches of the last SEARCH_WINDOW_DAYS showed the product,
  each showing weighted 1 / rank; score 1 - e^(-d / 5).
- `price_position`: where its lowest price sits among live products of the same type in the shop
  (0 cheapest, 1 dearest); score 1 - position (affordable for its kind). Types are grouped
  case-insensitively, singular and plural together ("Wig", "wigs"); absent in a group of fewer
  than MIN_PRICE_PEERS. Its time is the group's newest product change.
- `social_mentions`, `competitor_price`: the latest imported external values (`import_signals`);
  mentions score 1 - e^(-m / 50), a competitor price above ours scores above 0.5.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Min
from django.db.models.functions import Lower, Trim

from catalog.models import OrderLine, Product, Variant
from catalog.selectors import products_inventory_totals

from .models import ExternalSignal, SearchQuery

SALES_HALF_LIFE_DAYS = 7.0
SALES_WINDOW_DAYS = 90  # older orders weigh under 0.02%: not worth reading
SELL_THROUGH_DAYS = 30
RECENCY_HALF_LIFE_DAYS = 30.0
# A product whose publication and creation dates are both unknown (a CSV import) counts as this old.
UNKNOWN_AGE_DAYS = 365.0
SEARCH_WINDOW_DAYS = 14
SEARCH_LOG_LIMIT = 50_000  # the newest queries read per batch: bounded memory on a busy shop
MIN_PRICE_PEERS = 5  # products of one type group needed before price position means something


@dataclass(frozen=True, slots=True)
class Signal:
    value: float
    score: float  # normalized to [0, 1]
    at: str | None  # ISO time of the newest input
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def products_signals(products: list[Product], *, now: datetime) -> dict[int, dict[str, Signal]]:
    """Every signal of each product (variants should be prefetched). A few queries per batch."""
    sales = _sales(products, now)
    stock = products_inventory_totals([p.pk for p in products])
    demand = _search_demand(products, now)
    prices = _price_positions(products)
    external = _external(products)
    result: dict[int, dict[str, Signal]] = {}
    for product in products:
        velocity, sold_30d, last_sale = sales.get(product.pk, (0.0, 0, None))
        signals = {
            "sales_velocity": Signal(
                round(velocity, 4),
                1.0 - math.exp(-velocity / 0.5),
                last_sale,
                f"{velocity:.2f} units/day (decayed, half-life {SALES_HALF_LIFE_DAYS:g} d)",
            ),
            "recency": _recency(product, now),
        }
        if stock[product.pk] is not None:
            on_hand = max(stock[product.pk], 0)
            ratio = sold_30d / (sold_30d + on_hand) if sold_30d + on_hand else 0.0
            signals["sell_through"] = Signal(
                round(ratio, 4), ratio, last_sale, f"{sold_30d} sold in 30 d, {on_hand} in stock"
            )
        shown, last_shown = demand.get(product.pk, (0.0, None))
        signals["search_demand"] = Signal(
            round(shown, 4),
            1.0 - math.exp(-shown / 5.0),
            last_shown,
            f"shown in searches {shown:.1f} times (rank-weighted, {SEARCH_WINDOW_DAYS} d)",
        )
        if product.pk in prices:
            position, peers, at = prices[product.pk]
            signals["price_position"] = Signal(
                round(position, 4),
                1.0 - position,
                at,
                f"price at {position:.0%} of {peers} {product_type_group(product.product_type) or 'untyped'} "
                "products",
            )
        signals.update(_external_signals(product, external.get(product.pk, {})))
        result[product.pk] = signals
    return result


def _sales(products: list[Product], now: datetime) -> dict[int, tuple[float, int, str | None]]:
    by_key = {(p.shop_id, p.shopify_id): p.pk for p in products if p.shopify_id is not None}
    if not by_key:
        return {}
    rows = OrderLine.objects.filter(
        shop_id__in={k[0] for k in by_key},
        product_shopify_id__in={k[1] for k in by_key},
        ordered_at__gte=now - timedelta(days=SALES_WINDOW_DAYS),
        ordered_at__lte=now,
    ).values_list("shop_id", "product_shopify_id", "quantity", "ordered_at")
    decayed: dict[int, float] = defaultdict(float)
    recent: Counter[int] = Counter()
    last: dict[int, datetime] = {}
    for shop_id, shopify_id, quantity, ordered_at in rows:
        pk = by_key.get((shop_id, shopify_id))
        if pk is None or quantity <= 0:
            continue
        age = (now - ordered_at).total_seconds() / 86400.0
        decayed[pk] += quantity * 0.5 ** (age / SALES_HALF_LIFE_DAYS)
        if age <= SELL_THROUGH_DAYS:
            recent[pk] += quantity
        last[pk] = max(last.get(pk, ordered_at), ordered_at)
    # A decayed sum of units over a half-life h is, at a steady rate r, r * h / ln 2 days' worth.
    per_day = math.log(2) / SALES_HALF_LIFE_DAYS
    return {pk: (decayed[pk] * per_day, recent[pk], last[pk].isoformat()) for pk in decayed}


def _recency(product: Product, now: datetime) -> Signal:
    since = product.published_at or product.shopify_created_at
    age = max((now - since).total_seconds() / 86400.0, 0.0) if since else UNKNOWN_AGE_DAYS
    # Rounded to whole days: the hash of the inputs then moves once a day, not every second.
    age = float(round(age))
    return Signal(
        age,
        0.5 ** (age / RECENCY_HALF_LIFE_DAYS),
        since.isoformat() if since else None,
        f"published {age:.0f} days ago" if since else "publication date unknown",
    )


def _search_demand(products: list[Product], now: datetime) -> dict[int, tuple[float, str | None]]:
    wanted = {str(p.pk): p.pk for p in products}
    rows = (
        SearchQuery.objects.filter(
            shop_id__in={p.shop_id for p in products},
            created_at__gte=now - timedelta(days=SEARCH_WINDOW_DAYS),
        )
        .order_by("-created_at")
        .values_list("results", "created_at")[:SEARCH_LOG_LIMIT]
    )
    shown: dict[int, float] = defaultdict(float)
    last: dict[int, datetime] = {}
    for results, created_at in rows:
        for rank, doc_id in enumerate(results or [], start=1):
            pk = wanted.get(str(doc_id))
            if pk is not None:
                shown[pk] += 1.0 / rank
                last[pk] = max(last.get(pk, created_at), created_at)
    return {pk: (shown[pk], last[pk].isoformat()) for pk in shown}


def product_type_group(product_type: str) -> str:
    """The peer group of a product type: merchants type "Wig", "wigs" and " Wigs" for one kind."""
    group = " ".join(product_type.split()).casefold()
    if group.endswith("s") and not group.endswith("ss") and len(group) > 3:
        group = group[:-1]
    return group


def _price_positions(products: list[Product]) -> dict[int, tuple[float, int, str | None]]:
    """Percentile of each product's lowest price among live products of its type group and shop,
    with the group's size and its newest change; none where fewer than MIN_PRICE_PEERS compare
    (being the cheapest of two says little)."""
    groups = {(p.shop_id, product_type_group(p.product_type)) for p in products}
    # Narrowed in SQL to the types that can fall in these groups (lower-cased, trimmed, singular
    # or plural), so a batch reads its peers, not the shop's whole catalog; exact in Python below.
    spellings = {spelling for _, group in groups for spelling in (group, f"{group}s")}
    rows = (
        Variant.objects.annotate(type_key=Lower(Trim("product__product_type")))
        .filter(
            product__shop_id__in={g[0] for g in groups},
            product__deleted_at__isnull=True,
            price__isnull=False,
            type_key__in=spellings,
        )
        .values("product_id", "product__shop_id", "product__product_type")
        .annotate(low=Min("price"), changed=Max("product__modified_at"))
    )
    prices: dict[tuple[int, str], list[tuple[float, int]]] = defaultdict(list)
    changed: dict[tuple[int, str], datetime] = {}
    for row in rows:
        key = (row["product__shop_id"], product_type_group(row["product__product_type"]))
        if key in groups:
            prices[key].append((float(row["low"]), row["product_id"]))
            if row["changed"] and (key not in changed or row["changed"] > changed[key]):
                changed[key] = row["changed"]
    positions: dict[int, tuple[float, int, str | None]] = {}
    for key, members in prices.items():
        if len(members) < MIN_PRICE_PEERS:
            continue
        values = sorted(price for price, _ in members)
        at = changed[key].isoformat() if key in changed else None
        for price, pk in members:
            below = sum(1 for v in values if v < price)
            equal = sum(1 for v in values if v == price)
            # Mid-rank percentile: ties share a position; the cheapest is 0, the dearest 1.
            position = (below + (equal - 1) / 2) / (len(values) - 1)
            positions[pk] = (min(max(position, 0.0), 1.0), len(values), at)
    return positions


def _external(products: list[Product]) -> dict[int, dict[str, ExternalSignal]]:
    latest: dict[int, dict[str, ExternalSignal]] = defaultdict(dict)
    rows = ExternalSignal.objects.filter(product_id__in=[p.pk for p in products]).order_by("observed_at")
    for signal in rows:
        latest[signal.product_id][signal.kind] = signal  # ascending: the newest wins
    return latest


def _external_signals(product: Product, latest: dict[str, ExternalSignal]) -> dict[str, Signal]:
    signals = {}
    mentions = latest.get(ExternalSignal.Kind.SOCIAL_MENTIONS)
    if mentions is not None:
        signals["social_mentions"] = Signal(
            mentions.value,
            1.0 - math.exp(-max(mentions.value, 0.0) / 50.0),
            mentions.observed_at.isoformat(),
            f"{mentions.value:g} social mentions ({mentions.source or 'import'})",
        )
    competitor = latest.get(ExternalSignal.Kind.COMPETITOR_PRICE)
    ours = _lowest_price(product)
    if competitor is not None and competitor.value > 0 and ours is not None:
        gap = (competitor.value - ours) / competitor.value  # > 0: we are cheaper
        signals["competitor_price"] = Signal(
            competitor.value,
            min(max(0.5 + gap, 0.0), 1.0),
            competitor.observed_at.isoformat(),
            f"competitor {competitor.value:.2f} vs ours {ours:.2f}",
        )
    return signals


def _lowest_price(product: Product) -> float | None:
    prices = [float(v.price) for v in product.variants.all() if v.price is not None]
    return min(prices) if prices else None
