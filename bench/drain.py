"""Drain throughput benchmark: webhook events/s through the sync pipeline's drain(), on Postgres with
the embedded index, against what the database alone does with the same queue in the same run.

Each round starts from an empty database and a fresh index file (in a temp dir), then:

  setup     N products (the real feeder8 products/update payload, each with its own id, title,
            handle, variant and inventory item ids) stored as products/create events through
            `webhook_event_record` and drained, so they are in the catalog and in the index.
  (a)       E inventory_levels/update events for those products' inventory items (3 locations,
            updated_at increasing: every one applies), stored the same way, then
            `drain(batch_size=500)`, timed.
  (b)       E products/update events changing the title (newer updated_at each) of products drawn
            at random (fixed seed), so some batches hold several updates of one product and the
            drain coalesces them into one write. Timed the same way; also distinct product writes/s.
  baseline  Pending copies of the same rows, claimed and marked done by plain SQL in batches:
            UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 500) RETURNING the
            body, then one UPDATE for the batch. A second figure marks each row done with its own
            statement (one commit per event: the ceiling of a design that finishes events one by one).

After each scenario the outcome is checked: every event done (applied, stale or no-op), none left
pending, processing or dead; N documents in the index; every product's document (and stored row)
holds the expected inventory_total and title. ANALYZE runs before each timed phase.

Prints medians over rounds and writes bench/results/drain.json (with a digest of the code measured:
the pipeline changes often). With --profile, one more round (not counted) runs (a) and (b) under
cProfile and prints: SQL statements and commits per event, the statements taking the most time, the
plans of the claim's queries (backlog pending, then nothing pending), and the top functions by
cumulative and by own time, overall and the project's own; the profiles are saved as
bench/results/drain-<scenario>.prof.

DATABASE_URL (default: the dedicated shopsync_bench_drain database on the local Postgres) is created
if missing, migrated, and emptied every round, so its name must contain "bench"; an advisory lock
keeps two runs from sharing it. The machine's load average is recorded with each round.

Usage: .venv/bin/python bench/drain.py [--products 1000] [--events 10000] [--rounds 3]
                                        [--batch-size 500] [--workers 1] [--profile] [--fresh-db]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

if TYPE_CHECKING:  # imported for real only once Django is set up
    from catalog.models import Shop
    from sync.pipeline import DrainStats
    from sync.services import Delivery

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/shopsync_bench_drain"
SHOP = "feeder8-bench.myshopify.com"
FIXTURES = Path(os.environ.get("SHOPSYNC_FIXTURES") or common.ROOT.parent / "shared" / "fixtures")
PRODUCT_FIXTURE = "webhooks/products_update__feeder8_2024-01__raw_body.json"
INVENTORY_FIXTURE = "webhooks/inventory_levels_update__swordfox-wiw_2020-05__raw_body.json"
API_VERSION = "2024-01"
# Around the fixture's own location id; 3 locations per item so most events create a level and the
# last ones update one.
LOCATIONS = (36167909473, 36167909474, 36167909475)
# Scenario payloads are newer than the fixture (2024-05-06) and one second apart, so none is stale
# against the stored data: only coalescing within a batch makes an event stale.
SETUP_AT = datetime(2024, 5, 6, 10, 45, 18, tzinfo=UTC)
INVENTORY_START = datetime(2024, 6, 1, tzinfo=UTC)
CONTENT_START = datetime(2024, 7, 1, tzinfo=UTC)
SEED = 8
ENQUEUE_CHUNK = 1000  # deliveries stored per transaction while setting up (not measured)
FINISHED = {("done", "applied"), ("done", "stale"), ("done", "no-op")}
CODE_APPS = ("sync", "catalog", "search")


@dataclass
class Workload:
    """The deliveries of one scenario and what every product's index document holds afterwards."""

    name: str
    deliveries: list[Delivery]
    expected: dict[int, dict]  # shopify id -> {"title": ..., "inventory_total": ...}


@dataclass
class Measured:
    ids: list[int]
    figures: dict = field(default_factory=dict)


def main() -> None:
    args = _arguments()
    url = os.environ.get("DATABASE_URL") or DEFAULT_DB
    if "bench" not in common.database_name(url):
        raise SystemExit(f"refusing to empty {url}: the benchmark database's name must contain 'bench'")
    if args.fresh_db:
        common.postgres_database_drop(url)
    created = common.postgres_database_ensure(url)
    with (
        common.database_lock(url, "bench/drain.py"),
        tempfile.TemporaryDirectory(prefix="shopsync-bench-drain-") as workdir,
    ):
        common.django_setup(database_url=url, index_path=Path(workdir) / "unused.sqlite3")
        _migrate()
        print(f"database {common.database_name(url)}{' (created)' if created else ''}; index under {workdir}")
        code = _code_fingerprint()  # others edit the pipeline meanwhile: say which code was measured
        workloads = _workloads(args.products, args.events)
        rounds = []
        for number in range(1, args.rounds + 1):
            rounds.append(_round(f"round{number}", args, workloads, Path(workdir)))
            _print_round(number, rounds[-1])
        _warn_if_changed(code)
        if rounds:
            summary = _summarize(rounds, args)
            summary["config"]["code"] = _code_summary(code)
            _print_table(summary)
            name = "drain" if args.workers == 1 else f"drain-{args.workers}workers"
            print(f"written to {common.results_write(name, summary)}")
        if args.profile:
            _round("profile", args, workloads, Path(workdir), profile=True)
    if any(not r[key]["verify"]["ok"] for r in rounds for key in SCENARIOS):
        raise SystemExit("verification failed (see above)")


def _migrate() -> None:
    try:
        common.migrate()
    except Exception as exc:
        raise SystemExit(
            f"migrating the benchmark database failed ({exc}); if migrations were rewritten, "
            "run again with --fresh-db"
        ) from exc


def _code_fingerprint() -> dict[str, str]:
    """Digest of each Python file of the apps, by path (migrations included: indexes matter)."""
    files = sorted(p for app in CODE_APPS for p in (common.ROOT / app).rglob("*.py"))
    return {str(p.relative_to(common.ROOT)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _code_summary(fingerprint: dict[str, str]) -> dict[str, str]:
    digest = hashlib.sha256(orjson.dumps(fingerprint, option=orjson.OPT_SORT_KEYS)).hexdigest()
    newest = max(fingerprint, key=lambda path: (common.ROOT / path).stat().st_mtime)
    stamp = datetime.fromtimestamp((common.ROOT / newest).stat().st_mtime, UTC).isoformat(timespec="seconds")
    return {"sha256": digest[:16], "newest_file": f"{newest} {stamp}"}


def _warn_if_changed(before: dict[str, str]) -> None:
    after = _code_fingerprint()
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    if changed:
        print(
            f"WARNING: code changed during the run ({', '.join(changed)}); modules imported late may differ"
        )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1000, help="N: indexed products")
    parser.add_argument("--events", type=int, default=10_000, help="E: events per scenario")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (0: only --profile)")
    parser.add_argument("--batch-size", type=int, default=500, help="drain(batch_size=...)")
    parser.add_argument(
        "--workers", type=int, default=1, help="drain processes working the queue at once (as Q_WORKERS)"
    )
    parser.add_argument("--profile", action="store_true", help="one more round under cProfile (1 worker)")
    parser.add_argument(
        "--fresh-db", action="store_true", help="drop and recreate the database first (migrations rewritten)"
    )
    return parser.parse_args()


# --- workloads ------------------------------------------------------------------------------------


def _fixture(relative: str) -> dict:
    path = FIXTURES / relative
    if not path.exists():
        raise SystemExit(f"{path} not found: set SHOPSYNC_FIXTURES to the shared fixtures folder")
    return orjson.loads(path.read_bytes())


def _workloads(products: int, events: int) -> list[Workload]:
    template = _fixture(PRODUCT_FIXTURE)
    payloads = [_product_payload(template, k) for k in range(products)]
    setup = _setup_workload(payloads)
    inventory = _inventory_workload(payloads, events, setup.expected)
    content = _content_workload(payloads, events, inventory.expected)
    return [setup, inventory, content]


def _product_payload(template: dict, k: int) -> dict:
    """Product number k: the real payload with its own ids, title, handle and inventory items."""
    payload = copy.deepcopy(template)
    product_id, width = template["id"] + k, len(template["variants"])
    first = template["variants"][0]
    payload.update(
        id=product_id,
        title=f"{template['title']} {k:05d}",
        handle=f"{template['handle']}-{k}",
        admin_graphql_api_id=f"gid://shopify/Product/{product_id}",
    )
    for j, variant in enumerate(payload["variants"]):
        variant_id = first["id"] + k * width + j
        variant.update(
            id=variant_id,
            product_id=product_id,
            inventory_item_id=first["inventory_item_id"] + k * width + j,
            admin_graphql_api_id=f"gid://shopify/ProductVariant/{variant_id}",
        )
    for part in (*payload.get("options", []), *payload.get("images", [])):
        part["product_id"] = product_id
    return payload


def _delivery(topic: str, body: bytes, webhook_id: str, triggered_at: datetime) -> Delivery:
    """A delivery as the webhook view builds it from Shopify's headers."""
    from sync.services import Delivery

    stamp = triggered_at.isoformat().replace("+00:00", "Z")
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Api-Version": API_VERSION,
        "X-Shopify-Triggered-At": stamp,
    }
    return Delivery(
        shop_domain=SHOP,
        topic=topic,
        webhook_id=webhook_id,
        event_id=webhook_id,
        triggered_at=stamp,
        api_version=API_VERSION,
        headers=headers,
        body=body,
    )


def _setup_workload(payloads: list[dict]) -> Workload:
    deliveries = [
        _delivery("products/create", orjson.dumps(p), f"create-{p['id']}", SETUP_AT) for p in payloads
    ]
    expected = {
        p["id"]: {"title": p["title"], "inventory_total": sum(v["inventory_quantity"] for v in p["variants"])}
        for p in payloads
    }
    return Workload("setup", deliveries, expected)


def _inventory_workload(payloads: list[dict], count: int, before: dict[int, dict]) -> Workload:
    template = _fixture(INVENTORY_FIXTURE)
    items = [v["inventory_item_id"] for p in payloads for v in p["variants"]]
    levels: dict[tuple[int, int], int] = {}
    deliveries = []
    for i in range(count):
        item = items[i % len(items)]
        location = LOCATIONS[(i // len(items)) % len(LOCATIONS)]
        updated_at = INVENTORY_START + timedelta(seconds=i)
        body = {
            **template,
            "inventory_item_id": item,
            "location_id": location,
            "available": (7 * i) % 50,
            "updated_at": updated_at.isoformat(),
            "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{location}?inventory_item_id={item}",
        }
        levels[item, location] = body["available"]
        deliveries.append(_delivery("inventory_levels/update", orjson.dumps(body), f"inv-{i}", updated_at))
    totals = _inventory_totals(payloads, levels)
    expected = {pid: {**fields, "inventory_total": totals[pid]} for pid, fields in before.items()}
    return Workload("inventory", deliveries, expected)


def _inventory_totals(payloads: list[dict], levels: dict[tuple[int, int], int]) -> dict[int, int]:
    """As catalog.selectors.product_inventory_total: an item's levels where it has any, else the
    payload's inventory_quantity."""
    per_item: dict[int, int] = defaultdict(int)
    for (item, _), available in levels.items():
        per_item[item] += available
    totals = {}
    for p in payloads:
        items = [(v["inventory_item_id"], v["inventory_quantity"]) for v in p["variants"]]
        totals[p["id"]] = sum(per_item.get(item, quantity) for item, quantity in items)
    return totals


def _content_workload(payloads: list[dict], count: int, before: dict[int, dict]) -> Workload:
    rng = random.Random(SEED)
    expected = {pid: dict(fields) for pid, fields in before.items()}
    deliveries = []
    for i in range(count):
        payload = payloads[rng.randrange(len(payloads))]
        title = f"{payload['title']} rev {i}"
        updated_at = CONTENT_START + timedelta(seconds=i)
        body = orjson.dumps({**payload, "title": title, "updated_at": updated_at.isoformat()})
        expected[payload["id"]]["title"] = title
        deliveries.append(_delivery("products/update", body, f"upd-{i}", updated_at))
    return Workload("content", deliveries, expected)


# --- one round ------------------------------------------------------------------------------------


def _round(
    label: str, args: argparse.Namespace, workloads: list[Workload], workdir: Path, *, profile: bool = False
) -> dict[str, dict]:
    """Setup, (a), (b) and their baselines from an empty database; under cProfile when `profile`
    (then without baselines, and the reports are printed)."""
    setup, inventory, content = workloads
    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    shop = _reset(workdir / label)
    results = {"setup": _scenario(shop, setup, args.batch_size).figures}
    for workload in (inventory, content):
        measured = _scenario(shop, workload, args.batch_size, profile=profile, workers=args.workers)
        results[workload.name] = measured.figures
        if not profile:
            results[f"baseline_{workload.name}"] = _baseline(measured.ids, args.batch_size, per_row=False)
        if not profile and workload is inventory:
            results["baseline_per_row"] = _baseline(measured.ids, args.batch_size, per_row=True)
    results["load_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    return results


def _reset(index_dir: Path) -> Shop:
    """Empty every table the pipeline touches and point the index at a new file."""
    from django.conf import settings
    from django.db import connection
    from django_q.models import OrmQ

    from catalog.models import InventoryLevel, OrderLine, Product, Shop, Variant
    from search.backends import reset_backends
    from sync import queue
    from sync.models import DeadLetter, IndexHealth, WebhookEvent
    from sync.services import shop_cache_clear, shop_get_or_create

    models = (WebhookEvent, DeadLetter, IndexHealth, OrderLine, InventoryLevel, Variant, Product, Shop, OrmQ)
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    index_dir.mkdir(parents=True)
    backends = copy.deepcopy(settings.SEARCH_BACKENDS)
    backends[settings.SEARCH_BACKEND]["PATH"] = str(index_dir / "index.sqlite3")
    settings.SEARCH_BACKENDS = backends
    reset_backends()
    shop_cache_clear()
    queue.reset_debounce()
    return shop_get_or_create(domain=SHOP)


def _scenario(
    shop: Shop, workload: Workload, batch_size: int, *, profile: bool = False, workers: int = 1
) -> Measured:
    """Store the workload's events, drain them (timed), verify the outcome."""
    ids, enqueue_seconds = _enqueue(shop, workload.deliveries)
    profiler = _Profile(workload.name, len(ids), batch_size) if profile else None
    if profiler or workers == 1:
        stats, seconds = _timed_drain(batch_size, profiler)
    else:
        stats, seconds = _timed_drain_parallel(batch_size, workers)
    outcomes = {str(k): v for k, v in stats.outcomes.items()}
    figures = {
        "events": len(ids),
        "seconds": seconds,
        "events_per_s": len(ids) / seconds,
        "cpu_ms_per_1k": 1e6 * stats.cpu_seconds / len(ids),
        "product_writes": outcomes.get("applied", 0) if workload.name == "content" else None,
        "outcomes": outcomes,
        "retried": stats.retried,
        "enqueue_per_s": len(ids) / enqueue_seconds,
    }
    if figures["product_writes"] is not None:
        figures["product_writes_per_s"] = figures["product_writes"] / seconds
    figures["verify"] = _verify(shop, workload, ids)
    if profiler:
        profiler.report(figures)
    return Measured(ids, figures)


def _enqueue(shop: Shop, deliveries: list[Delivery]) -> tuple[list[int], float]:
    """Store deliveries with the real ingest service (in chunks per transaction: this is set-up)."""
    from django.db import transaction

    from sync.services import webhook_event_record

    ids = []
    start = time.perf_counter()
    for offset in range(0, len(deliveries), ENQUEUE_CHUNK):
        with transaction.atomic():
            for delivery in deliveries[offset : offset + ENQUEUE_CHUNK]:
                event, created = webhook_event_record(shop=shop, delivery=delivery)
                if not created:
                    raise RuntimeError(f"delivery {delivery.webhook_id} was already stored")
                ids.append(event.pk)
    return ids, time.perf_counter() - start


def _timed_drain(batch_size: int, profiler: _Profile | None) -> tuple[DrainStats, float]:
    from sync.pipeline import drain

    _analyze()
    if profiler:
        profiler.before_drain()
    start, cpu = time.perf_counter(), time.process_time()
    with profiler or contextlib.nullcontext():
        stats = drain(batch_size=batch_size)
    stats.cpu_seconds = time.process_time() - cpu  # this process only: steadier than wall time
    return stats, time.perf_counter() - start


def _timed_drain_parallel(batch_size: int, workers: int) -> tuple[DrainStats, float]:
    """`workers` processes drain the same queue at once, as django-q2's workers do (SKIP LOCKED
    claims, row locks on levels and products). CPU is summed over the drain processes."""
    import multiprocessing

    from django.db import connections

    from sync.pipeline import DrainStats

    _analyze()
    connections.close_all()  # a forked child must open its own connection
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    children = [context.Process(target=_drain_child, args=(batch_size, results)) for _ in range(workers)]
    start = time.perf_counter()
    for child in children:
        child.start()
    reports = [results.get() for _ in children]
    seconds = time.perf_counter() - start
    for child in children:
        child.join()
    stats = DrainStats()
    for report in reports:
        if "error" in report:
            raise SystemExit(f"a drain worker failed: {report['error']}")
        stats.outcomes.update(report["outcomes"])
        stats.retried += report["retried"]
        stats.cpu_seconds += report["cpu"]
    return stats, seconds


def _drain_child(batch_size: int, results) -> None:
    from sync.pipeline import drain

    try:
        cpu = time.process_time()
        stats = drain(batch_size=batch_size)
        cpu = time.process_time() - cpu
        report = {"outcomes": dict(stats.outcomes), "retried": stats.retried, "cpu": cpu}
    except BaseException as exc:  # the parent waits for a report from every child
        report = {"error": f"{type(exc).__name__}: {exc}"}
    results.put(report)


def _analyze() -> None:
    """Fresh planner statistics: the tables were just filled."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# --- verification ---------------------------------------------------------------------------------


def _verify(shop: Shop, workload: Workload, ids: list[int]) -> dict:
    """Every event finished; the index holds N documents, each as expected; so do the rows."""
    from catalog.models import Product
    from search.backends import get_backend
    from search.documents import product_doc_id
    from sync.models import WebhookEvent

    ends = Counter(WebhookEvent.objects.filter(pk__in=ids).values_list("status", "outcome"))
    unfinished = {f"{s}/{o or '-'}": n for (s, o), n in ends.items() if (s, o) not in FINISHED}
    backend = get_backend()
    products = {p.shopify_id: p for p in Product.objects.filter(shop=shop).only("pk", "shopify_id", "title")}
    documents = {sid: backend.get(product_doc_id(p)) for sid, p in products.items()}
    wrong_docs = [sid for sid, want in workload.expected.items() if not _holds(documents.get(sid), want)]
    wrong_rows = [
        sid
        for sid, want in workload.expected.items()
        if sid not in products or products[sid].title != want["title"]
    ]
    sample = random.Random(SEED).choice(sorted(workload.expected))
    count = backend.count(shop=SHOP)
    return {
        "ok": not (unfinished or wrong_docs or wrong_rows) and count == len(workload.expected),
        "events": {f"{s}/{o or '-'}": n for (s, o), n in sorted(ends.items())},
        "unfinished": unfinished,
        "index_documents": count,
        "products": len(workload.expected),
        "documents_not_as_expected": len(wrong_docs),
        "rows_not_as_expected": len(wrong_rows),
        "first_wrong": wrong_docs[:3] or wrong_rows[:3],
        "sample": _sample(sample, documents.get(sample), workload.expected[sample]),
    }


def _holds(document: dict | None, want: dict) -> bool:
    return document is not None and all(document.get(name) == value for name, value in want.items())


def _sample(shopify_id: int, document: dict | None, want: dict) -> str:
    got = {name: (document or {}).get(name) for name in want}
    verdict = "as expected" if got == want else f"EXPECTED {want}"
    return f"product {shopify_id}: index has {got}, {verdict}"


# --- the database-only baseline -------------------------------------------------------------------


def _baseline(ids: list[int], batch_size: int, *, per_row: bool) -> dict:
    """Claim pending copies of these events and mark them done with plain SQL. Returns figures."""
    from django.db import connection

    suffix = "per-row" if per_row else f"batched-{ids[0]}"
    copies = _pending_copies(ids, suffix)
    claim, finish = _baseline_sql(per_row)
    _analyze()
    claimed = 0
    start = time.perf_counter()
    with connection.cursor() as cursor:
        while True:
            cursor.execute(claim, [batch_size])
            claimed_ids = [row[0] for row in cursor.fetchall()]
            if not claimed_ids:
                break
            claimed += len(claimed_ids)
            if per_row:
                for pk in claimed_ids:
                    cursor.execute(finish, [pk])
            else:
                cursor.execute(finish, [claimed_ids])
    seconds = time.perf_counter() - start
    if claimed != copies:
        raise RuntimeError(f"baseline claimed {claimed} of {copies} rows")
    return {"events": claimed, "seconds": seconds, "events_per_s": claimed / seconds}


def _pending_copies(ids: list[int], suffix: str) -> int:
    """Pending copies of these events (same bodies and headers) under new webhook ids."""
    from django.utils import timezone

    from sync.models import WebhookEvent

    now, copies = timezone.now(), []
    for event in WebhookEvent.objects.filter(pk__in=ids).iterator(chunk_size=ENQUEUE_CHUNK):
        event.pk, event.webhook_id = None, f"{event.webhook_id}-{suffix}"
        event.status, event.outcome, event.attempts = WebhookEvent.Status.PENDING, "", 0
        event.next_attempt_at, event.lease_expires_at, event.processed_at = now, None, None
        event.note = event.error = ""
        copies.append(event)
    return len(WebhookEvent.objects.bulk_create(copies, batch_size=ENQUEUE_CHUNK))


def _baseline_sql(per_row: bool) -> tuple[str, str]:
    from django.conf import settings
    from django.db import connection

    from sync.models import WebhookEvent

    table = connection.ops.quote_name(WebhookEvent._meta.db_table)
    claim = (
        f"UPDATE {table} SET status = 'processing', attempts = attempts + 1, "
        f"lease_expires_at = now() + interval '{int(settings.SYNC_LEASE_SECONDS)} seconds' "
        f"WHERE id IN (SELECT id FROM {table} WHERE status = 'pending' AND next_attempt_at <= now() "
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, body"
    )
    finish = (
        f"UPDATE {table} SET status = 'done', outcome = 'applied', processed_at = now(), "
        "lease_expires_at = NULL WHERE id " + ("= %s" if per_row else "= ANY(%s)")
    )
    return claim, finish


# --- profiling ------------------------------------------------------------------------------------


class _Profile:
    """Around one drain: common.SqlProfile (cProfile, SQL statements, commits), and the plans of the
    claim's queries with the backlog pending and with nothing left."""

    def __init__(self, name: str, events: int, batch_size: int) -> None:
        self.name, self.events, self.batch_size = name, events, batch_size
        self.sql = common.SqlProfile()
        self.plans: dict[str, list[str]] = {}

    def before_drain(self) -> None:
        self.plans["with the backlog pending"] = _claim_plans(self.batch_size)

    def __enter__(self) -> None:
        self.sql.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.sql.__exit__(*exc)
        self.plans["with nothing pending (the drain's last poll)"] = _claim_plans(self.batch_size)

    def report(self, figures: dict) -> None:
        label = "(a)" if self.name == "inventory" else "(b)"
        print(
            f"\n=== profile {label} {self.name}: {self.events} events, {figures['events_per_s']:.0f} "
            "events/s under cProfile ==="
        )
        verify = figures["verify"]
        print(f"verify: {'OK' if verify['ok'] else 'FAILED ' + orjson.dumps(verify).decode()}")
        self.sql.print_statements(events=self.events, seconds=figures["seconds"])
        for title, plans in self.plans.items():
            print(f"--- the claim's SELECTs {title}:")
            print("\n".join(plans))
        self.sql.print_functions(apps=CODE_APPS, save_to=common.RESULTS / f"drain-{self.name}.prof")


def _claim_plans(batch_size: int) -> list[str]:
    """One line per SELECT that `claim_batch` really sends: its EXPLAIN ANALYZE time, scans and rows
    filtered away. The claim runs in a transaction that is rolled back."""
    from django.db import connection, transaction

    from sync.pipeline import claim_batch

    lines: list[str] = []

    def explain(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SELECT"):
            with connection.connection.cursor() as cursor:  # the driver's own: no wrappers
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                lines.append(_plan_line(sql, [row[0] for row in cursor.fetchall()]))
        return execute(sql, params, many, context)

    try:
        with transaction.atomic(), connection.execute_wrapper(explain):
            claim_batch(batch_size)
            raise _RollBack
    except _RollBack:
        pass
    return lines or ["  (no SELECT seen)"]


def _plan_line(sql: str, plan: list[str]) -> str:
    wanted = ("Scan", "Rows Removed", "Execution Time", "Sort Method")
    parts = [
        re.sub(r"\s*\(cost=[^)]*\)", "", line.strip().lstrip("-> "))
        for line in plan
        if any(w in line for w in wanted)
    ]
    return f"  {common.sql_shape(sql)[:110]}\n      " + "; ".join(parts)


class _RollBack(Exception):
    pass


# --- report ---------------------------------------------------------------------------------------

SCENARIOS = ("setup", "inventory", "content")
ROWS = (  # (key, label)
    ("setup", "setup: products/create"),
    ("inventory", "(a) inventory-only"),
    ("content", "(b) content updates"),
    ("baseline_inventory", "baseline SQL, batched, (a) rows"),
    ("baseline_content", "baseline SQL, batched, (b) rows"),
    ("baseline_per_row", "baseline SQL, per-row done, (a) rows"),
)


def _print_round(number: int, result: dict[str, dict]) -> None:
    parts = [f"{key} {result[key]['events_per_s']:.0f}/s" for key, _ in ROWS if key in result]
    checks = " ".join(f"{key}:{'ok' if result[key]['verify']['ok'] else 'FAILED'}" for key in SCENARIOS)
    load = result["load_1min"]
    print(
        f"round {number}: " + ", ".join(parts) + f"; verify {checks}; "
        f"load {load['before']:.1f} -> {load['after']:.1f}",
        flush=True,
    )
    for key in SCENARIOS:
        verify = result[key]["verify"]
        if not verify["ok"]:
            print(f"  {key} verification failed: {orjson.dumps(verify).decode()}")


def _summarize(rounds: list[dict], args: argparse.Namespace) -> dict:
    summary: dict = {}
    for key, _ in ROWS:
        summary[key] = {
            "events_per_round": rounds[0][key]["events"],
            "events_per_s_median": common.median(r[key]["events_per_s"] for r in rounds),
            "seconds_median": common.median(r[key]["seconds"] for r in rounds),
            "events_per_s_rounds": [r[key]["events_per_s"] for r in rounds],
        }
    for key in SCENARIOS:
        summary[key]["cpu_ms_per_1k_median"] = common.median(r[key]["cpu_ms_per_1k"] for r in rounds)
        summary[key]["outcomes_last_round"] = rounds[-1][key]["outcomes"]
        summary[key]["retried_per_round"] = [r[key]["retried"] for r in rounds]
        summary[key]["verified_every_round"] = all(r[key]["verify"]["ok"] for r in rounds)
        summary[key]["verify_last_round"] = rounds[-1][key]["verify"]
        summary[key]["enqueue_per_s_median"] = common.median(r[key]["enqueue_per_s"] for r in rounds)
    content = summary["content"]
    content["product_writes_per_round"] = rounds[-1]["content"]["product_writes"]
    content["product_writes_per_s_median"] = common.median(
        r["content"]["product_writes_per_s"] for r in rounds
    )
    for key in ("inventory", "content"):
        summary[key]["ratio_to_baseline_batched"] = (
            summary[key]["events_per_s_median"] / summary[f"baseline_{key}"]["events_per_s_median"]
        )
        summary[key]["ratio_to_baseline_per_row"] = (
            summary[key]["events_per_s_median"] / summary["baseline_per_row"]["events_per_s_median"]
        )
        summary[key]["seconds_per_batch"] = args.batch_size / summary[key]["events_per_s_median"]
    summary["config"] = _config(args, rounds)
    return summary


def _config(args: argparse.Namespace, rounds: list[dict]) -> dict:
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version'), current_setting('synchronous_commit')")
        version, synchronous_commit = cursor.fetchone()
    return {
        "products": args.products,
        "events": args.events,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "lease_seconds": settings.SYNC_LEASE_SECONDS,
        "postgres": version,
        "synchronous_commit": synchronous_commit,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
        "load_1min_per_round": [r["load_1min"] for r in rounds],
    }


def _print_table(summary: dict) -> None:
    config = summary["config"]
    print(
        f"\n{'':40} {'events/s':>9} {'s/round':>8}   (median of {config['rounds']} rounds, "
        f"{config['workers']} drain worker(s))"
    )
    for key, label in ROWS:
        row = summary[key]
        print(f"  {label:<38} {row['events_per_s_median']:9.0f} {row['seconds_median']:8.2f}")
    content = summary["content"]
    print(
        f"  (b) distinct product writes/s: {content['product_writes_per_s_median']:.0f} "
        f"({content['product_writes_per_round']} writes for {content['events_per_round']} events)"
    )
    for key, label in (("inventory", "(a)"), ("content", "(b)")):
        row = summary[key]
        print(
            f"  {label} / batched SQL baseline: {row['ratio_to_baseline_batched']:.3f}; "
            f"/ per-row baseline: "
            f"{row['ratio_to_baseline_per_row']:.2f}; one batch of {summary['config']['batch_size']} takes "
            f"{row['seconds_per_batch']:.2f} s (lease {summary['config']['lease_seconds']} s)"
        )
    print(
        "  drain processes' CPU per 1,000 events (steadier than wall time on a shared machine): "
        + ", ".join(f"{key} {summary[key]['cpu_ms_per_1k_median']:.0f} ms" for key in SCENARIOS)
    )
    for key in SCENARIOS:
        verify = summary[key]["verify_last_round"]
        print(
            f"  verify {key}: {'OK' if summary[key]['verified_every_round'] else 'FAILED'} every round; "
            f"retried {summary[key]['retried_per_round']}; "
            f"last: events {verify['events']}, {verify['index_documents']} index docs for "
            f"{verify['products']} products, {verify['documents_not_as_expected']} docs and "
            f"{verify['rows_not_as_expected']} rows not as expected; sample {verify['sample']}"
        )


if __name__ == "__main__":
    main()
