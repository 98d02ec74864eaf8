"""Recovery benchmark: how long after an index outage until the backlog is applied, unattended.

A worker thread drains as a django-q2 worker does (`sync.tasks.drain_pending` in a loop). The
index refuses every write (503) while 1,000 product deliveries arrive, so they fail and back off.
Then the index comes back and nobody touches anything: the figure is the time from the index
coming back until all 1,000 events are applied. Target: under 60 s. Repeated for a few rounds;
medians printed and written to bench/results/recovery.json.

Usage: .venv/bin/python bench/recovery.py [--events 1000] [--outage 10] [--rounds 3]
Needs Postgres (DATABASE_URL, default the local shopsync_bench_recovery database).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/shopsync_bench_recovery"
SHOP = "recovery.myshopify.com"
os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
os.environ.update(SECRET_KEY="bench-only", DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="ERROR")
os.environ["EMBEDDED_INDEX_PATH"] = str(Path(tempfile.mkdtemp()) / "index.sqlite3")


class Outage:
    """Makes the embedded index answer every write with 503 while `down` is set."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.refused = 0

    def install(self) -> None:
        from search.backends.base import WriteOutcome, WriteResult
        from search.backends.embedded import EmbeddedBackend

        original_write, original_ping = EmbeddedBackend.write, EmbeddedBackend.ping
        outage = self

        def write(backend, writes):
            if outage.down.is_set():
                outage.refused += len(writes)
                return [WriteResult(w, WriteOutcome.RETRYABLE, "503 Service Unavailable") for w in writes]
            return original_write(backend, writes)

        def ping(backend):
            if outage.down.is_set():
                from search.backends.base import IndexError_

                raise IndexError_("503 Service Unavailable", retryable=True)
            original_ping(backend)

        EmbeddedBackend.write, EmbeddedBackend.ping = write, ping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the index stays down")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    _prepare_database()
    import django

    django.setup()
    outage = Outage()
    outage.install()
    rounds = [_round(n, args, outage) for n in range(args.rounds)]
    _report(rounds, args)


def _prepare_database() -> None:
    if os.environ["DATABASE_URL"] == DEFAULT_DB:
        # A dedicated database, made fresh each run: no stale schema from an older checkout.
        name = DEFAULT_DB.rsplit("/", 1)[-1]
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", name], check=True)
        subprocess.run(
            ["createdb", "-h", "127.0.0.1", "-U", "postgres", name],
            capture_output=True,
            check=False,
        )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def _round(number: int, args, outage: Outage) -> dict:
    from sync.models import WebhookEvent
    from sync.pipeline import drain

    _clean()
    stop = threading.Event()
    worker = threading.Thread(target=_worker, args=(stop, drain), daemon=True)
    outage.down.set()
    outage.refused = 0
    worker.start()
    arrival_started = time.monotonic()
    _deliver(number, args.events)
    time.sleep(max(0.0, args.outage - (time.monotonic() - arrival_started)))
    waiting = WebhookEvent.objects.filter(status__in=("pending", "processing")).count()
    outage.down.clear()  # the index is back; from here on nobody acts
    back_at = time.monotonic()
    done_after = _wait_until_applied(args.events, deadline=120.0)
    recovered = time.monotonic() - back_at if done_after else None
    stop.set()
    worker.join(timeout=30)
    result = {
        "seconds_to_apply_all": recovered,
        "events": args.events,
        "pending_when_index_came_back": waiting,
        "writes_refused_during_outage": outage.refused,
    }
    shown = f"{recovered:.1f} s" if recovered is not None else "NOT within 120 s"
    print(
        f"round {number + 1}: {waiting} events waiting when the index came back; all applied {shown} later "
        f"({outage.refused} writes refused during the outage)",
        flush=True,
    )
    return result


def _worker(stop: threading.Event, drain) -> None:
    """What a qcluster worker does: the drain task, woken again and again (wake-ups and sweep)."""
    from django.db import connection

    try:
        while not stop.is_set():
            drain(idle_seconds=1.0)
    finally:
        connection.close()


def _clean() -> None:
    from catalog.models import Product, Shop
    from search.backends import get_backend
    from sync.models import DeadLetter, IndexHealth, WebhookEvent

    DeadLetter.objects.all().delete()
    WebhookEvent.objects.all().delete()
    Product.objects.all().delete()
    IndexHealth.objects.all().delete()
    Shop.objects.get_or_create(domain=SHOP)
    get_backend().clear()


def _deliver(number: int, count: int) -> None:
    """Store `count` real-shaped product deliveries as the webhook view does."""
    from catalog.models import Shop
    from sync.services import Delivery, webhook_event_record
    from tests.helpers import SHARED_FIXTURES

    shop = Shop.objects.get(domain=SHOP)
    template = json.loads(
        (SHARED_FIXTURES / "webhooks/products_update__feeder8_2024-01__raw_body.json").read_bytes()
    )
    for n in range(count):
        payload = {**template, "id": 10_000 + n, "handle": f"p-{n}", "title": f"Product {n} round {number}"}
        body = json.dumps(payload).encode()
        delivery = Delivery(SHOP, "products/update", f"r{number}-{n}", "", "", "2024-01", {}, body)
        webhook_event_record(shop=shop, delivery=delivery)


def _wait_until_applied(count: int, *, deadline: float) -> bool:
    from sync.models import WebhookEvent

    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if WebhookEvent.objects.filter(status="done", outcome="applied").count() >= count:
            return True
        time.sleep(0.2)
    return False


def _report(rounds: list[dict], args) -> None:
    times = [r["seconds_to_apply_all"] for r in rounds if r["seconds_to_apply_all"] is not None]
    summary = {
        "rounds": rounds,
        "median_seconds_to_apply_all": statistics.median(times) if times else None,
        "all_rounds_within_60s": len(times) == len(rounds) and max(times) < 60,
        "config": {"events": args.events, "outage_seconds": args.outage, "cores": os.cpu_count()},
    }
    median = summary["median_seconds_to_apply_all"]
    print(
        f"\nmedian time from the index coming back to all {args.events} events applied: "
        f"{median:.1f} s (target < 60 s)"
        if median is not None
        else "\nbacklog did not drain"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "recovery.json").write_text(json.dumps(summary, indent=2))
    print(f"written to {out / 'recovery.json'}")


if __name__ == "__main__":
    main()
