"""Convergence (DESIGN §4.9): whatever the order, duplication and delay of deliveries, and whatever
the index answered meanwhile, once the stream quiesces the index equals the stored truth and the
stored truth equals the newest version of each product.

Hypothesis generates streams of real-shaped deliveries (the feeder8 products/update body, varied)
for 2-4 products: creates, updates (title, tags, price, stock, active/draft/archived), inventory
levels and deletes, delivered shuffled, with exact duplicates (same X-Shopify-Webhook-Id) and late
retries of old payloads (new webhook id, at the end). Between deliveries the worker drains in small
batches while the index answers 429, 503, timeouts or 507 for a while, and one worker dies
mid-batch (after claiming it, before its index write, or after it) and its lease later expires.

After quiescence: every delivery is one event and every event is done (none dead); the stored
products and inventory levels are the newest versions; each live product's document has its
content, version vector and stock and nothing is pending; deleted products have no document;
search finds exactly the active live products; reconcile finds no drift.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.utils import timezone as dj_timezone
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from catalog.models import InventoryLevel, Product, Shop
from catalog.selectors import product_inventory_total
from search.api import search_products
from sync import queue
from sync.models import DeadLetter, IndexHealth, WebhookEvent
from sync.pipeline import claim_batch, drain
from sync.reconcile import reconcile_shop
from sync.services import shop_cache_clear
from tests.conftest import post_webhook, webhook_body

pytestmark = pytest.mark.django_db

FEEDER8 = "products_update__feeder8_2024-01__raw_body.json"
SHOP = "feeder8.myshopify.com"
FEEDER8_TZ = timezone(timedelta(hours=7))  # feeder8's payloads carry +07:00 offsets
PRODUCTS_START = datetime(2024, 5, 6, 17, 45, 18, tzinfo=FEEDER8_TZ)
LEVELS_START = datetime(2024, 5, 6, 18, 0, 0, tzinfo=FEEDER8_TZ)
# One word per product, in every title of that product and nowhere else: searching it finds
# exactly that product (when it is searchable).
CODEWORDS = ("Alpine", "Boreal", "Cobalt", "Dune")
STYLES = ("Golden", "Purple", "Racing", "Classic")
TAGS = ("Accessory", "Sport", "Winter", "Sale")
STATUSES = ("active", "draft", "archived")
PRICES = ("25", "19.99", "50", "10")
FIXTURE_PRICES = (Decimal("25"), Decimal("50"), Decimal("10"))  # of the three variants
LOCATIONS = (65544149101, 65544149102)
FAULTS = (
    ("retryable", "429 Too Many Requests"),
    ("retryable", "503 Service Unavailable"),
    ("retryable", "timed out after 10.0s"),
    ("blocked", "507 feed blocked: disk limit reached"),
)
# An event fails at most once per drain while the index is faulty; staying under
# SYNC_MAX_ATTEMPTS (8, counting the crashed claim and the final successful one) means no event
# may legitimately end in the dead-letter queue, so any dead letter is a finding.
MAX_FAULTY_DRAINS = 5
MAX_QUIESCE_ROUNDS = 5
# Examples per run; CONVERGENCE_EXAMPLES raises it for a longer soak. The Vespa variant sends
# every write over HTTP to the stand-in and waits out its deadline under 429/503 storms, so it
# runs fewer (CONVERGENCE_VESPA_EXAMPLES).
EXAMPLES = int(os.environ.get("CONVERGENCE_EXAMPLES", "120"))
VESPA_EXAMPLES = int(os.environ.get("CONVERGENCE_VESPA_EXAMPLES", "30"))


# --- the model: what Shopify sent, and therefore what must be true in the end ---------------------


@dataclass(frozen=True)
class Version:
    updated_at: datetime
    title: str
    tags: tuple[str, ...]
    status: str
    price: str  # of the first variant; the others keep the fixture's prices
    stocks: tuple[int, int, int]  # inventory_quantity of the three variants

    def __str__(self) -> str:
        return (
            f"{self.updated_at:%H:%M:%S} {self.title!r} {self.status} tags={list(self.tags)} "
            f"price={self.price} stock={list(self.stocks)}"
        )


@dataclass(frozen=True)
class Level:
    item: int
    location: int
    available: int
    updated_at: datetime

    def __str__(self) -> str:
        return f"item {self.item} @ {self.location} = {self.available} at {self.updated_at:%H:%M:%S}"


@dataclass
class History:
    """Everything Shopify will have said about one product by the end of the stream."""

    index: int
    shopify_id: int
    codeword: str
    items: tuple[int, ...]  # inventory_item_id of each variant
    versions: list[Version]
    levels: list[Level]
    deleted_at: datetime | None


@dataclass(frozen=True)
class Delivery:
    label: str
    topic: str
    body: bytes = field(repr=False)
    webhook_id: str
    triggered_at: str = ""
    product: int = 0  # History.index
    carries: Version | Level | None = None  # None: the product's delete

    def __str__(self) -> str:
        return f"{self.label} [{self.webhook_id}]"


@dataclass
class Expected:
    """What must be true of one product once everything delivered so far is processed."""

    history: History
    newest: Version | None = None  # the newest version delivered
    deleted_at: datetime | None = None  # set once its delete was delivered
    levels: dict[tuple[int, int], Level] = field(default_factory=dict)  # newest per (item, location)

    def inventory_total(self) -> int:
        """Per variant: its levels where some were delivered, else the newest payload's stock."""
        total = 0
        for item, stock in zip(self.history.items, self.newest.stocks, strict=True):
            at_locations = [lvl.available for (i, _), lvl in self.levels.items() if i == item]
            total += sum(at_locations) if at_locations else stock
        return total


def _expected(scenario: Scenario, delivered: list[Delivery]) -> list[Expected]:
    expected = [Expected(history) for history in scenario.products]
    for d in delivered:
        e = expected[d.product]
        if isinstance(d.carries, Version):
            if e.newest is None or d.carries.updated_at > e.newest.updated_at:
                e.newest = d.carries
        elif isinstance(d.carries, Level):
            key = (d.carries.item, d.carries.location)
            if key not in e.levels or d.carries.updated_at > e.levels[key].updated_at:
                e.levels[key] = d.carries
        else:
            e.deleted_at = e.history.deleted_at
    return expected


# Steps of a scenario: deliveries and what the worker and the index do between them.
@dataclass(frozen=True)
class Deliver:
    delivery: Delivery
    kind: str = "first"  # first delivery, "duplicate" (same webhook id) or "late retry"

    def __str__(self) -> str:
        return f"deliver {self.delivery}" + ("" if self.kind == "first" else f" ({self.kind})")


@dataclass(frozen=True)
class Drain:
    batch_size: int

    def __str__(self) -> str:
        return f"drain(batch_size={self.batch_size})"


@dataclass(frozen=True)
class Fault:
    outcome: str
    error: str

    def __str__(self) -> str:
        return f"index fails writes: {self.outcome} {self.error!r}"


@dataclass(frozen=True)
class Heal:
    def __str__(self) -> str:
        return "index healed"


@dataclass(frozen=True)
class TimePasses:
    """Retry backoffs and a feed-blocked pause run out."""

    def __str__(self) -> str:
        return "time passes: backoffs and pauses are over"


@dataclass(frozen=True)
class Quiet:
    """A lull in the stream: the index heals, backoffs, pauses and leases run out, the worker
    catches up, and everything delivered so far must have converged."""

    def __str__(self) -> str:
        return "quiet: the worker catches up; check convergence"


CRASH_POINTS = ("after claiming", "before the index write", "after the index write")


@dataclass(frozen=True)
class Crash:
    """One worker dies mid-batch: right after claiming it, after storing its changes in the
    catalog but before writing the index, or after the index applied the writes but before the
    worker recorded that."""

    claim: int
    point: str

    def __str__(self) -> str:
        return f"a worker takes a batch of {self.claim} and dies {self.point}"


@dataclass(frozen=True)
class LeaseExpires:
    def __str__(self) -> str:
        return "the dead worker's lease expires"


@dataclass
class Scenario:
    products: list[History]
    steps: list

    def describe(self) -> str:
        lines = ["products:"]
        for h in self.products:
            lines.append(f"  P{h.index} id={h.shopify_id} items={list(h.items)}")
            lines += [f"    v{n} {v}" for n, v in enumerate(h.versions)]
            lines += [f"    level {lvl}" for lvl in h.levels]
            if h.deleted_at:
                lines.append(f"    deleted at {h.deleted_at:%H:%M:%S}")
        lines.append("steps:")
        lines += [f"  {n:2}. {step}" for n, step in enumerate(self.steps)]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # how hypothesis shows a falsifying example
        printer.text("Scenario:\n" + self.describe())


# --- payloads: the real feeder8 body, varied ------------------------------------------------------


def _product_body(base: dict, history: History, version: Version) -> bytes:
    product = copy.deepcopy(base)
    shopify_id = history.shopify_id
    product.update(
        id=shopify_id,
        admin_graphql_api_id=f"gid://shopify/Product/{shopify_id}",
        handle=f"{history.codeword.lower()}-ski-wax",
        title=version.title,
        tags=", ".join(version.tags),
        status=version.status,
        updated_at=version.updated_at.isoformat(),
    )
    for position, variant in enumerate(product["variants"]):
        variant_id = variant["id"] + 10 * history.index
        variant.update(
            id=variant_id,
            admin_graphql_api_id=f"gid://shopify/ProductVariant/{variant_id}",
            product_id=shopify_id,
            inventory_item_id=history.items[position],
            inventory_quantity=version.stocks[position],
            old_inventory_quantity=version.stocks[position],
        )
        if position == 0:
            variant["price"] = version.price
    variant_ids = [variant["id"] for variant in product["variants"]]
    for option in product["options"]:
        option["product_id"] = shopify_id
    for image, variant_id in zip(product["images"], variant_ids, strict=False):
        image.update(product_id=shopify_id, variant_ids=[variant_id])
    product["image"] = product["images"][0]
    product["variant_ids"] = [{"id": variant_id} for variant_id in variant_ids]
    return json.dumps(product).encode()


def _level_body(level: Level) -> bytes:
    return json.dumps(
        {
            "inventory_item_id": level.item,
            "location_id": level.location,
            "available": level.available,
            "updated_at": level.updated_at.isoformat(),
            "admin_graphql_api_id": (
                f"gid://shopify/InventoryLevel/{level.location}?inventory_item_id={level.item}"
            ),
        }
    ).encode()


def _shopify_header_time(moment: datetime) -> str:
    """X-Shopify-Triggered-At as Shopify sends it: UTC, Z, nanoseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


# --- strategies -----------------------------------------------------------------------------------

versions_st = st.lists(
    st.tuples(
        st.integers(1, 3600),  # seconds after the previous version
        st.sampled_from(STYLES),
        st.lists(st.sampled_from(TAGS), unique=True, max_size=3).map(tuple),
        st.sampled_from(STATUSES),
        st.sampled_from(PRICES),
        st.tuples(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12)),
    ),
    min_size=1,
    max_size=4,
)
levels_st = st.lists(
    st.tuples(
        st.integers(1, 3600),  # seconds after the previous level of this product
        st.integers(0, 2),  # which variant's item
        st.integers(0, len(LOCATIONS) - 1),
        st.integers(0, 40),
    ),
    max_size=3,
)
ops_st = st.one_of(
    st.none(),
    st.builds(Drain, st.integers(1, 4)),
    st.sampled_from(FAULTS).map(lambda fault: Fault(*fault)),
    st.just(Heal()),
    st.just(TimePasses()),
    st.just(Quiet()),
)


@st.composite
def scenarios(draw) -> Scenario:
    base = json.loads(webhook_body(FEEDER8))
    base_items = tuple(variant["inventory_item_id"] for variant in base["variants"])
    products: list[History] = []
    deliveries: list[Delivery] = []
    for index in range(draw(st.integers(2, len(CODEWORDS)))):
        codeword = CODEWORDS[index]
        versions, moment = [], PRODUCTS_START
        for gap, style, tags, status, price, stocks in draw(versions_st):
            moment += timedelta(seconds=gap)
            title = f"{codeword} {style} Ski Wax"
            versions.append(Version(moment, title, tags, status, price, stocks))
        deleted_at = None
        if draw(st.booleans()):
            deleted_at = moment + timedelta(seconds=draw(st.integers(1, 3600)))
        items = tuple(item + 10 * index for item in base_items)
        levels, level_moment = [], LEVELS_START
        for gap, variant, location, available in draw(levels_st):
            level_moment += timedelta(seconds=gap)
            levels.append(Level(items[variant], LOCATIONS[location], available, level_moment))
        history = History(index, base["id"] + index, codeword, items, versions, levels, deleted_at)
        products.append(history)

        for n, version in enumerate(versions):
            deliveries.append(
                Delivery(
                    f"P{index}.v{n} {'create' if n == 0 else 'update'}",
                    "products/create" if n == 0 else "products/update",
                    _product_body(base, history, version),
                    webhook_id="",
                    product=index,
                    carries=version,
                )
            )
        for n, level in enumerate(levels):
            deliveries.append(
                Delivery(
                    f"P{index}.level{n}",
                    "inventory_levels/update",
                    _level_body(level),
                    webhook_id="",
                    product=index,
                    carries=level,
                )
            )
        if deleted_at is not None:
            deliveries.append(
                Delivery(
                    f"P{index} delete",
                    "products/delete",
                    json.dumps({"id": history.shopify_id}).encode(),
                    webhook_id="",
                    triggered_at=_shopify_header_time(deleted_at),
                    product=index,
                )
            )
    deliveries = [replace(d, webhook_id=f"wh-{n:02}") for n, d in enumerate(deliveries)]

    # Shopify's order: shuffled, some deliveries twice (same webhook id), and retries of old
    # payloads under a new webhook id hours later, at the end.
    stream = [Deliver(d) for d in draw(st.permutations(deliveries))]
    for source in draw(st.lists(st.integers(0, len(deliveries) - 1), max_size=3)):
        original = next(s for s in stream if s.delivery is deliveries[source])
        at = draw(st.integers(stream.index(original) + 1, len(stream)))
        stream.insert(at, Deliver(original.delivery, "duplicate"))
    late = draw(st.lists(st.integers(0, len(deliveries) - 1), unique=True, max_size=3))
    for n, source in enumerate(late):
        stream.append(Deliver(replace(deliveries[source], webhook_id=f"wh-retry-{n}"), "late retry"))

    ops = draw(st.lists(ops_st, min_size=len(stream), max_size=len(stream)))
    crash_at = draw(st.integers(0, len(stream)))
    crash = Crash(draw(st.integers(1, 4)), draw(st.sampled_from(CRASH_POINTS)))
    expire_at = draw(st.integers(crash_at, len(stream)))

    steps: list = []
    for position in range(len(stream) + 1):
        if position == crash_at:
            steps.append(crash)
        if position == expire_at:
            steps.append(LeaseExpires())
        if position < len(stream):
            steps.append(stream[position])
            if ops[position] is not None:
                steps.append(ops[position])
    return Scenario(products, _bound_faulty_drains(steps))


def _bound_faulty_drains(steps: list) -> list:
    """Heal the index before a drain that would exceed MAX_FAULTY_DRAINS drains under a fault."""
    bounded, fault, faulty_drains = [], None, 0
    for step in steps:
        if isinstance(step, Fault):
            fault = step
        elif isinstance(step, Heal):
            fault = None
        elif isinstance(step, Drain) and fault is not None:
            if faulty_drains >= MAX_FAULTY_DRAINS:
                bounded.append(Heal())
                fault = None
            else:
                faulty_drains += 1
        bounded.append(step)
    return bounded


# --- running a scenario ---------------------------------------------------------------------------


class WorkerDied(BaseException):
    """The worker process is killed: not an Exception, so no handler of the pipeline records it,
    and every open transaction rolls back as the database would on the lost connection."""


@dataclass
class CrashSwitch:
    armed: str | None = None  # a Crash point: the next index write kills the worker there


@pytest.fixture
def crash_switch(index_faults, monkeypatch) -> CrashSwitch:
    """Wraps the (fault-injecting) index writes so that one of them can kill the worker."""
    from search.backends.embedded import EmbeddedBackend

    return _crash_switch(monkeypatch, EmbeddedBackend)


def _crash_switch(monkeypatch, backend_cls) -> CrashSwitch:
    switch = CrashSwitch()
    write_or_fail = backend_cls.write  # the fault-injecting version

    def write(self, writes):
        point, switch.armed = switch.armed, None
        if point == "before the index write":
            raise WorkerDied(point)
        results = write_or_fail(self, writes)
        if point == "after the index write":
            raise WorkerDied(point)
        return results

    monkeypatch.setattr(backend_cls, "write", write)
    return switch


def _reset(index, index_faults) -> None:
    """Each example starts from an empty catalog, queue and index."""
    DeadLetter.objects.all().delete()
    WebhookEvent.objects.all().delete()
    Shop.objects.all().delete()  # cascades to products, variants, inventory levels, orders
    IndexHealth.objects.all().delete()
    shop_cache_clear()  # the cache would hand out the deleted Shop
    queue.reset_debounce()
    index_faults.heal()
    index_faults.results.clear()
    index.clear()


def _unfinished():
    return WebhookEvent.objects.filter(
        status__in=[WebhookEvent.Status.PENDING, WebhookEvent.Status.PROCESSING]
    )


def _time_passes() -> None:
    WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).update(next_attempt_at=dj_timezone.now())
    IndexHealth.objects.update(paused_until=None)


def _leases_expire() -> None:
    # Only a dead worker holds leases here: every other drain has returned.
    WebhookEvent.objects.filter(status=WebhookEvent.Status.PROCESSING).update(
        lease_expires_at=dj_timezone.now() - timedelta(seconds=1)
    )


def _crash(step: Crash, crash_switch: CrashSwitch) -> None:
    if step.point == "after claiming":
        held = [event.webhook_id for event in claim_batch(step.claim)]  # ...and never processed
    else:
        crash_switch.armed = step.point
        before = set(_unfinished().values_list("pk", flat=True))
        with contextlib.suppress(WorkerDied):
            drain(batch_size=step.claim)
        crash_switch.armed = None  # no index write happened: the worker lived on
        processing = WebhookEvent.objects.filter(pk__in=before, status=WebhookEvent.Status.PROCESSING)
        held = list(processing.values_list("webhook_id", flat=True))
    note(f"{step}: it held {held}")


def _quiesce(index_faults) -> None:
    """The index is back, backoffs, pauses and leases run out, the worker drains until done."""
    for _ in range(MAX_QUIESCE_ROUNDS):
        index_faults.heal()
        _time_passes()
        _leases_expire()
        drain()
        if not _unfinished().exists():
            return
    left = list(_unfinished().values_list("webhook_id", "status", "attempts", "error"))
    raise AssertionError(f"not quiescent after {MAX_QUIESCE_ROUNDS} rounds: {left}")


def _run(scenario: Scenario, client, index, index_faults, crash_switch: CrashSwitch) -> None:
    delivered: list[Delivery] = []
    for n, step in enumerate(scenario.steps):
        if isinstance(step, Deliver):
            d = step.delivery
            extra = {"HTTP_X_SHOPIFY_TRIGGERED_AT": d.triggered_at} if d.triggered_at else None
            response = post_webhook(
                client, d.body, topic=d.topic, shop=SHOP, webhook_id=d.webhook_id, extra=extra
            )
            assert response.status_code == 200, (str(step), response.content)
            delivered.append(d)
        elif isinstance(step, Drain):
            drain(batch_size=step.batch_size)
        elif isinstance(step, Fault):
            index_faults.fail(step.outcome, step.error)
        elif isinstance(step, Heal):
            index_faults.heal()
        elif isinstance(step, TimePasses):
            _time_passes()
        elif isinstance(step, Crash):
            _crash(step, crash_switch)
        elif isinstance(step, LeaseExpires):
            _leases_expire()
        elif isinstance(step, Quiet):
            _quiesce(index_faults)
            _assert_converged(scenario, delivered, index, at=f"after step {n}")
        else:  # pragma: no cover
            raise AssertionError(f"unknown step {step!r}")
    _quiesce(index_faults)
    _assert_converged(scenario, delivered, index, at="at the end")


def _assert_converged(scenario: Scenario, delivered: list[Delivery], index, *, at: str) -> None:
    events = {e.webhook_id: e for e in WebhookEvent.objects.all()}
    outcomes = "\n".join(
        f"  {e.webhook_id}: {e.topic} {e.status}/{e.outcome} attempts={e.attempts} {e.note or e.error}"
        for e in sorted(events.values(), key=lambda e: e.pk)
    )
    note(f"event outcomes {at}:\n{outcomes}")

    # (4) one row per (shop, webhook id); repeats counted on it, not stored again
    deliveries_per_id = Counter(d.webhook_id for d in delivered)
    assert set(events) == set(deliveries_per_id), at
    assert {wid: e.duplicate_deliveries + 1 for wid, e in events.items()} == dict(deliveries_per_id), at
    # (1) everything finished, nothing dead: no fault here is permanent or outlasts the retries
    assert {wid: e.status for wid, e in events.items() if e.status != WebhookEvent.Status.DONE} == {}, at
    assert not DeadLetter.objects.exists(), at

    expected = _expected(scenario, delivered)
    # stored inventory levels are the newest delivered of each (item, location)
    stored_levels = {
        (lvl.inventory_item_id, lvl.location_id): (lvl.available, lvl.shopify_updated_at)
        for lvl in InventoryLevel.objects.filter(shop__domain=SHOP)
    }
    assert stored_levels == {
        key: (lvl.available, lvl.updated_at) for e in expected for key, lvl in e.levels.items()
    }, at

    # (2) and (3), product by product
    live = 0
    for e in expected:
        history = e.history
        rows = list(Product.objects.filter(shop__domain=SHOP, shopify_id=history.shopify_id))
        hits = {hit.id for hit in search_products(history.codeword, shop=SHOP)}
        label = f"P{history.index} ({history.codeword}) {at}"
        if e.deleted_at is not None:
            assert [p.pk for p in rows if p.deleted_at is None] == [], f"{label}: deleted but live"
            for product in rows:
                assert product.deleted_at == e.deleted_at, label
                assert index.get(str(product.pk)) is None, f"{label}: deleted but indexed"
            assert hits == set(), f"{label}: deleted but found"
            continue
        if e.newest is None:  # only stock so far: no product, no document
            assert rows == [], f"{label}: no version delivered, yet stored"
            continue
        live += 1
        assert len(rows) == 1, f"{label}: {len(rows)} stored rows"
        product, newest = rows[0], e.newest
        assert product.deleted_at is None, f"{label}: never deleted"
        stored = (product.title, product.status, product.tags, product.shopify_updated_at)
        assert stored == (newest.title, newest.status, list(newest.tags), newest.updated_at), label
        prices = [v.price for v in product.variants.order_by("position")]
        assert prices == [Decimal(newest.price), *FIXTURE_PRICES[1:]], label

        doc = index.get(str(product.pk))
        assert doc is not None, f"{label}: stored but not indexed"
        assert (doc["title"], doc["status"], doc["tags"], doc["shopify_id"]) == (
            product.title,
            product.status,
            product.tags,
            product.shopify_id,
        ), label
        assert (doc["price_min"], doc["price_max"]) == (float(min(prices)), float(max(prices))), label
        vector = {"shopify": doc.get("vv_shopify"), "inventory": doc.get("vv_inventory")}
        assert vector == product.version_vector, label
        assert product.index_vector == product.version_vector, f"{label}: index writes still pending"
        total = product_inventory_total(product)
        assert (doc["inventory_total"], total) == (e.inventory_total(),) * 2, label

        searchable = newest.status == "active"
        assert hits == ({str(product.pk)} if searchable else set()), f"{label}: {newest.status}"
    # no orphaned or half-empty documents, and the project's own drift check agrees
    assert index.count(shop=SHOP) == live, at
    assert index.count() == live, at
    shop = Shop.objects.filter(domain=SHOP).first()
    if shop is not None:
        report = reconcile_shop(shop=shop)
        drift = {"missing": report.missing, "extra": report.extra, "differing": report.differing}
        assert report.drift == 0, f"reconcile finds drift {at}: {drift}"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    print_blob=True,  # a failure prints @reproduce_failure(...) to replay it exactly
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_any_delivery_stream_converges(scenario, client, index, index_faults, crash_switch):
    _reset(index, index_faults)
    _run(scenario, client, index, index_faults, crash_switch)


# --- the same property on the Vespa backend, faults injected at the stand-in -----------------------


class VespaFaults:
    """FAULTS as the Vespa stand-in answers them: every request 429 or 503 (the backend retries
    until its deadline), every write applied and then answered 504 or cut off (a timeout whose
    write happened: replaying it must be harmless), or a feed block (507)."""

    def __init__(self, fake_vespa) -> None:
        self.app = fake_vespa.app
        self.results: list = []

    def fail(self, outcome: str, error: str) -> None:
        from tests.search.fake_vespa import Rule

        self.heal()
        if error.startswith(("429", "503")):
            self.app.add_faults(Rule(status=int(error[:3]), count=None))
        elif error.startswith("timed out"):
            # The write happened and the client saw an error: a 504 for updates, a connection
            # dropped mid-answer for removes.
            self.app.add_faults(
                Rule(apply_then_fail=504, operation="update", count=None),
                Rule(drop_connection="after", operation="remove", count=None),
            )
        else:
            self.app.knobs.feed_block = True

    def heal(self) -> None:
        self.app.clear_faults()
        self.app.knobs.feed_block = False


@pytest.fixture
def vespa_index(settings, fake_vespa):
    from search.backends import get_backend, reset_backends

    fake_vespa.app.reset()
    # A short deadline: a drain under a 429 storm gives up (retryable) after a second.
    settings.SEARCH_BACKENDS = {
        "vespa": {
            "BACKEND": "search.backends.vespa.VespaBackend",
            "URL": fake_vespa.url,
            "DEADLINE": 1.0,
            "REQUEST_TIMEOUT": 5.0,
        }
    }
    settings.SEARCH_BACKEND = "vespa"
    reset_backends()
    yield get_backend()
    reset_backends()


@pytest.fixture
def vespa_faults(vespa_index, fake_vespa, monkeypatch) -> VespaFaults:
    from search.backends.vespa import VespaBackend

    faults = VespaFaults(fake_vespa)
    original = VespaBackend.write

    def write(self, writes):
        results = original(self, writes)
        faults.results.extend(results)
        return results

    monkeypatch.setattr(VespaBackend, "write", write)
    return faults


@pytest.fixture
def vespa_crash_switch(vespa_faults, monkeypatch) -> CrashSwitch:
    from search.backends.vespa import VespaBackend

    return _crash_switch(monkeypatch, VespaBackend)


@settings(
    max_examples=VESPA_EXAMPLES,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_any_delivery_stream_converges_on_vespa(
    scenario, client, vespa_index, vespa_faults, vespa_crash_switch
):
    _reset(vespa_index, vespa_faults)
    _run(scenario, client, vespa_index, vespa_faults, vespa_crash_switch)
