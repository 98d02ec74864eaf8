"""Webhook ingest benchmark: durable deliveries/s through the real endpoint under gunicorn.

POSTs signed real Shopify payloads (each with a fresh X-Shopify-Webhook-Id, so every request is
a new durable INSERT) at /webhooks/shopify, and the same bodies at a trivial POST view served by
the same gunicorn, in alternating rounds of one run. Prints requests/s and p50/p99 latency for
both (medians over rounds) and writes them to bench/results/ingest.json.

Needs Postgres (DATABASE_URL, default the local shopsync_bench database) and `wrk`
(Debian package `wrk`). Usage: .venv/bin/python bench/ingest.py [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "bench-secret"
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/shopsync_bench"
PAYLOADS = [  # (fixture, topic, shop): real captures, raw bytes where we have them
    ("products_update__feeder8_2024-01__raw_body.json", "products/update", "feeder8.myshopify.com"),
    ("products_update__aura-historia-devstore_2026-04__body.json", "products/update", "aura.myshopify.com"),
    (
        "products_create-or-update__swordfox-wiw_2020-05__raw_body.json",
        "products/create",
        "wiw.myshopify.com",
    ),
    (
        "inventory_levels_update__swordfox-wiw_2020-05__raw_body.json",
        "inventory_levels/update",
        "wiw.myshopify.com",
    ),
]
LUA = r"""
local deliveries = { %(deliveries)s }
local counter, thread_id = 0, 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args) thread_id = tid end
function request()
  counter = counter + 1
  local d = deliveries[(counter %% #deliveries) + 1]
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Shopify-Topic"] = d.topic,
    ["X-Shopify-Shop-Domain"] = d.shop,
    ["X-Shopify-Hmac-Sha256"] = d.sig,
    ["X-Shopify-API-Version"] = "2024-01",
    ["X-Shopify-Webhook-Id"] = "%(run)s-" .. thread_id .. "-" .. counter,
  }
  return wrk.format("POST", "%(path)s", headers, d.body)
end
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("RESULT {\"requests\": %%d, \"seconds\": %%f, \"p50_ms\": %%f, "
    .. "\"p99_ms\": %%f, \"non2xx\": %%d, \"errors\": %%d}\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install wrk")
    env = _environment()
    _prepare_database(env)
    deliveries = _deliveries()
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(args.workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        _wait(f"http://127.0.0.1:{port}/healthz")
        results = _measure(port, deliveries, args)
    finally:
        server.terminate()
        server.wait(timeout=30)
    stored = _stored_events(env)
    _report(results, stored, args)


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", DEFAULT_DB)
    env.update(
        SECRET_KEY="bench-only",
        SHOPIFY_WEBHOOK_SECRETS=SECRET,
        SHOPSYNC_BENCH_ROUTES="1",
        DEBUG="0",
        LOG_LEVEL="ERROR",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    return env


def _prepare_database(env: dict[str, str]) -> None:
    name = env["DATABASE_URL"].rsplit("/", 1)[-1]
    if env["DATABASE_URL"] == DEFAULT_DB:
        # A dedicated database, made fresh each run: no stale schema from an older checkout.
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", name], check=True)
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name], check=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    _sql(env, "TRUNCATE sync_webhookevent, django_q_ormq CASCADE")


def _sql(env: dict[str, str], statement: str) -> str:
    code = (
        "import django; django.setup(); from django.db import connection\n"
        f"c = connection.cursor(); c.execute({statement!r})\n"
        "print(c.fetchone()[0] if c.description else '')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def _stored_events(env: dict[str, str]) -> int:
    return int(_sql(env, "SELECT count(*) FROM sync_webhookevent"))


def _deliveries() -> list[tuple[str, str, bytes]]:
    from sync.security import sign
    from tests.helpers import SHARED_FIXTURES

    rows = []
    for name, topic, shop in PAYLOADS:
        path = SHARED_FIXTURES / "webhooks" / name
        if not path.exists():
            raise SystemExit(f"{path} not found: set SHOPSYNC_FIXTURES to the shared fixtures folder")
        body = path.read_bytes()
        rows.append((topic, shop, body, sign(body, SECRET)))
    return rows


def _lua(deliveries, path: str, run: str) -> str:
    items = ", ".join(
        f'{{topic="{topic}", shop="{shop}", sig="{sig}", body=[==[{body.decode()}]==]}}'
        for topic, shop, body, sig in deliveries
    )
    return LUA % {"deliveries": items, "path": path, "run": run}


def _wrk(port: int, deliveries, path: str, run: str, seconds: int, connections: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(deliveries, path, run))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script.name, f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(script.name)
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    result["rps"] = result["requests"] / result["seconds"]
    return result


def _measure(port: int, deliveries, args) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"trivial": [], "webhook": []}
    _wrk(port, deliveries, "/webhooks/shopify", "warmup", 2, args.connections)
    for round_no in range(args.rounds):
        for name, path in (("trivial", "/bench/trivial"), ("webhook", "/webhooks/shopify")):
            result = _wrk(
                port, deliveries, path, f"r{round_no}-{time.time_ns()}", args.seconds, args.connections
            )
            results[name].append(result)
            print(
                f"round {round_no + 1} {name:<8} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                f"p99 {result['p99_ms']:6.2f} ms  non-2xx {result['non2xx']}",
                flush=True,
            )
    return results


def _report(results: dict[str, list[dict]], stored: int, args) -> None:
    summary = {}
    for name, rounds in results.items():
        summary[name] = {
            "rps_median": statistics.median(r["rps"] for r in rounds),
            "p50_ms_median": statistics.median(r["p50_ms"] for r in rounds),
            "p99_ms_median": statistics.median(r["p99_ms"] for r in rounds),
            "non2xx": sum(r["non2xx"] for r in rounds),
        }
    accepted = sum(r["requests"] - r["non2xx"] for r in results["webhook"])
    summary["webhook"]["ratio_to_trivial"] = (
        summary["webhook"]["rps_median"] / summary["trivial"]["rps_median"]
    )
    summary["durable"] = {"answered_2xx_measured_rounds": accepted, "rows_stored_incl_warmup": stored}
    summary["config"] = {
        "seconds": args.seconds,
        "rounds": args.rounds,
        "workers": args.workers,
        "connections": args.connections,
        "cores": os.cpu_count(),
    }
    print("\n             req/s (median)   p50 ms   p99 ms")
    for name in ("trivial", "webhook"):
        s = summary[name]
        print(f"  {name:<10} {s['rps_median']:12.0f} {s['p50_ms_median']:9.2f} {s['p99_ms_median']:8.2f}")
    print(
        f"  webhook / trivial: {summary['webhook']['ratio_to_trivial']:.2f}; "
        f"{accepted} deliveries answered 2xx in measured rounds, {stored} rows stored (incl. warm-up)"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ingest.json").write_text(json.dumps(summary, indent=2))
    print(f"written to {out / 'ingest.json'}")
    if summary["webhook"]["non2xx"]:
        raise SystemExit(
            f"{summary['webhook']['non2xx']} webhook requests were not answered 2xx: figures invalid"
        )


def _wait(url: str) -> None:
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server did not start: {url}")


if __name__ == "__main__":
    main()
