"""Feed benchmark: our Vespa backend against the official Vespa CLI (`vespa feed`).

Both feed the same 10,000 product documents (the real catalog export from the shared fixtures,
replicated, each with a 384-float embedding) to the same Vespa stand-in, in alternating rounds of
one run, and this prints documents/s for both and the ratio (target: ours >= 0.5 x `vespa feed`).

Like for like: `vespa feed` gets exactly the operations our backend sends, as JSONL: per
document, the content group's partial update (`assign`, null-safe version condition,
`create: true`) and the embedding group's (condition, no create). Both keep operations on one
document id in order and classify every answer. The stand-in runs as its own process; its CPU
time per round is measured, so a stand-in that is the bottleneck for both shows as ~100 % busy.

    .venv/bin/python bench/vespa_feed.py [--docs 10000] [--rounds 3] [--concurrency 64] [--profile]

Embeddings are the model's (all-MiniLM-L6-v2, 384 floats), one per catalog product, computed in a
child process so the model stays out of the process measured; --random-embeddings uses seeded
pseudo-random unit vectors instead (no model needed).
Results go to bench/results/vespa_feed.json.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import random
import resource
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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DATABASE_URL", "sqlite:///:memory:")  # the feed touches no database

import django  # noqa: E402

django.setup()

from catalog.normalize.csv_export import iter_csv_products  # noqa: E402
from catalog.normalize.fields import html_to_text  # noqa: E402
from catalog.versioning import embed_text  # noqa: E402
from search.backends.base import IndexWrite, WriteOutcome, version_field  # noqa: E402
from search.backends.vespa import VespaBackend  # noqa: E402
from search.fields import EMBEDDING_DIMENSIONS  # noqa: E402
from search.vespa_app.build import DOCUMENT_TYPE  # noqa: E402
from tests.helpers import SHARED_FIXTURES  # noqa: E402
from tests.search.fake_vespa.server import free_port  # noqa: E402

CATALOG = "catalog/products_export__hair-extensions-store_2025__84-products.csv"
NAMESPACE = "shopsync"
SHOP = "hair-extensions-demo.myshopify.com"
RESULTS = ROOT / "bench" / "results"


def catalog_writes(count: int, *, real_embeddings: bool = True) -> tuple[list[IndexWrite], str]:
    """Two writes per document (content with create, embedding without), `count` documents made
    by replicating the real catalog; each copy carries its product's embedding. Returns the writes
    and where the embeddings came from."""
    path = SHARED_FIXTURES / CATALOG
    if not path.exists():
        raise SystemExit(f"the real catalog is not at {path}; set SHOPSYNC_FIXTURES")
    with path.open(newline="", encoding="utf-8") as stream:
        products = [item.product for item in iter_csv_products(stream) if item.product is not None]
    if real_embeddings:
        model, vectors = model_embeddings([embed_text(p) for p in products])
        source = f"the model's ({model}), one per catalog product, computed in a separate process"
    else:
        model, vectors = "pseudo-random-unit@bench", [unit_vector(n) for n in range(len(products))]
        source = "deterministic pseudo-random unit vectors (the model's size)"
    writes = []
    for n in range(count):
        product = products[n % len(products)]
        prices = [v.price for v in product.variants if v.price is not None]
        fields = {
            "shop": SHOP,
            "shopify_id": 10**12 + n,
            "handle": f"{product.handle}-{n}",
            "title": product.title,
            "description": html_to_text(product.body_html),
            "vendor": product.vendor,
            "product_type": product.product_type,
            "tags": list(product.tags),
            "status": product.status,
            "price_min": float(min(prices)) if prices else None,
            "price_max": float(max(prices)) if prices else None,
        }
        writes.append(IndexWrite(str(n), "shopify", 1, fields, create=True))
        embedding = {"embedding": vectors[n % len(products)], "embedding_model": model}
        writes.append(IndexWrite(str(n), "embedding", 1, embedding))
    return writes, source


EMBED_SCRIPT = """
import json, sys
import django
django.setup()
from search.embeddings import SentenceTransformerEncoder
encoder = SentenceTransformerEncoder()
vectors = encoder.encode(json.load(sys.stdin), batch_size=32)
json.dump({"model": encoder.name, "vectors": vectors.tolist()}, sys.stdout)
"""


def model_embeddings(texts: list[str]) -> tuple[str, list[list[float]]]:
    """The real model's vectors for these texts, from a child process: the model (~520 MB, torch's
    threads) stays out of the process whose client CPU is measured."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", EMBED_SCRIPT],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"embedding the catalog failed (or use --random-embeddings):\n{done.stderr[-2000:]}")
    answer = json.loads(done.stdout)
    return answer["model"], answer["vectors"]


def unit_vector(seed: int) -> list[float]:
    rng = random.Random(seed)
    vector = [rng.gauss(0.0, 1.0) for _ in range(EMBEDDING_DIMENSIONS)]
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def feed_jsonl(writes: list[IndexWrite], path: Path) -> None:
    """The same operations as `vespa feed` input: updates with condition and create."""
    with path.open("w") as out:
        for write in writes:
            vv = version_field(write.writer)
            fields = {name: {"assign": value} for name, value in write.fields.items()}
            if "embedding" in fields:
                fields["embedding"] = {"assign": {"values": write.fields["embedding"]}}
            fields[vv] = {"assign": write.version}
            op = {
                "update": f"id:{NAMESPACE}:{DOCUMENT_TYPE}::{write.doc_id}",
                "condition": f"{DOCUMENT_TYPE}.{vv} == null or {DOCUMENT_TYPE}.{vv} < {write.version}",
                "fields": fields,
            }
            if write.create:
                op["create"] = True
            out.write(json.dumps(op) + "\n")


class StandIn:
    """The stand-in in its own process, with its CPU time readable from /proc."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.search.fake_vespa", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.process.stdout.readline()  # the URL, once it is about to serve
        for _ in range(100):
            with contextlib.suppress(OSError):
                self.call("GET", "/ApplicationStatus")
                return
            time.sleep(0.05)
        raise SystemExit("the stand-in did not start")

    def call(self, method: str, path: str) -> dict:
        request = urllib.request.Request(
            self.url + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def run_ours(stand_in: StandIn, writes: list[IndexWrite], args: argparse.Namespace, profile: bool) -> dict:
    params = {
        "URL": stand_in.url,
        "CONCURRENCY": args.concurrency,
        "DEADLINE": 900,
        "COMPRESS": args.compress,
    }
    backend = VespaBackend("bench", params)
    backend.get("warm-up")  # the loop thread and the HTTP/2 connection, outside the timing
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        backend._run(_call(profiler.enable), timeout=5)  # the loop thread is where the work is
    cpu, server = _cpu_self(), stand_in.cpu_seconds()
    started = time.perf_counter()
    results = backend.write(writes)
    wall = time.perf_counter() - started
    cpu, server = _cpu_self() - cpu, stand_in.cpu_seconds() - server
    if profiler is not None:
        backend._run(_call(profiler.disable), timeout=5)
    backend.close()
    outcomes: dict[str, int] = {}
    for result in results:
        outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
    return {
        "wall": wall,
        "client_cpu": cpu,
        "server_cpu": server,
        "ok": outcomes.get(WriteOutcome.APPLIED.value, 0),
        "outcomes": outcomes,
        "profile": _top(profiler) if profiler is not None else "",
    }


async def _async_call(function) -> None:
    function()


def _call(function):
    return _async_call(function)


def run_vespa_feed(stand_in: StandIn, vespa: str, jsonl: Path, operations: int) -> dict:
    cpu, server = _cpu_children(), stand_in.cpu_seconds()
    started = time.perf_counter()
    completed = subprocess.run(
        [vespa, "feed", "--target", stand_in.url, str(jsonl)], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    cpu, server = _cpu_children() - cpu, stand_in.cpu_seconds() - server
    try:
        stats = json.loads(completed.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"vespa feed failed: {completed.stderr[-2000:]}") from None
    return {
        "wall": wall,
        "client_cpu": cpu,
        "server_cpu": server,
        "ok": stats.get("feeder.ok.count", 0),
        "outcomes": stats.get("http.response.code.counts", {}),
        "requests": stats.get("http.request.count", 0),
        "errors": stats.get("feeder.error.count", 0),
        "operations": operations,
    }


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _top(profiler: cProfile.Profile, count: int = 18) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(count)
    return out.getvalue()


def vespa_cli() -> str:
    found = shutil.which("vespa", path=str(Path(sys.executable).parent)) or shutil.which("vespa")
    if not found:
        raise SystemExit("the Vespa CLI is missing: pip install -r requirements/dev.txt (vespacli)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description="Our Vespa backend vs `vespa feed`, same stand-in.")
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--compress", default="auto", help="our backend's COMPRESS (vespa feed: auto)")
    parser.add_argument("--profile", action="store_true", help="cProfile our client's loop thread")
    parser.add_argument(
        "--random-embeddings", action="store_true", help="pseudo-random vectors instead of the model's"
    )
    args = parser.parse_args()

    vespa = vespa_cli()
    writes, embeddings = catalog_writes(args.docs, real_embeddings=not args.random_embeddings)
    print(f"{args.docs} documents ({len(writes)} operations: content + embedding each), from {CATALOG}")
    print(f"our backend: CONCURRENCY {args.concurrency}, COMPRESS {args.compress}; vespa feed: its defaults")
    print(f"embeddings: {embeddings}")
    stand_in = StandIn()
    rows: dict[str, list[dict]] = {"ours": [], "vespa feed": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            jsonl = Path(tmp) / "feed.jsonl"
            feed_jsonl(writes, jsonl)
            os.environ.setdefault("VESPA_CLI_HOME", tmp)
            for n in range(args.rounds):
                order = ("ours", "vespa feed") if n % 2 == 0 else ("vespa feed", "ours")
                for name in order:
                    stand_in.call("POST", "/_fake/reset")
                    if name == "ours":
                        row = run_ours(stand_in, writes, args, args.profile and n == 0)
                    else:
                        row = run_vespa_feed(stand_in, vespa, jsonl, len(writes))
                    stored = stand_in.call("GET", "/_fake/stats")
                    row["documents_stored"] = stored["documents"]
                    row["stand_in_requests"] = stored["requests"]
                    row["docs_per_s"] = args.docs / row["wall"]
                    rows[name].append(row)
                    print(
                        f"round {n + 1} {name:10} {row['docs_per_s']:7.0f} docs/s  wall {row['wall']:5.1f}s  "
                        f"client cpu {row['client_cpu']:5.1f}s  stand-in cpu {row['server_cpu']:5.1f}s "
                        f"({100 * row['server_cpu'] / row['wall']:.0f}% busy)  ok {row['ok']}/{len(writes)}  "
                        f"stored {stored['documents']}  answers {row['outcomes']}"
                    )
                    if row["ok"] != len(writes) or stored["documents"] != args.docs:
                        raise SystemExit(f"{name} did not apply every operation: no figures reported")
    finally:
        stand_in.stop()

    ours = statistics.median(r["docs_per_s"] for r in rows["ours"])
    cli = statistics.median(r["docs_per_s"] for r in rows["vespa feed"])
    busy = {name: statistics.median(r["server_cpu"] / r["wall"] for r in rs) for name, rs in rows.items()}
    print(
        f"\nmedian of {args.rounds}: ours {ours:.0f} docs/s, vespa feed {cli:.0f} docs/s, "
        f"ratio {ours / cli:.2f}"
    )
    print(f"stand-in busy (CPU time / wall): ours {busy['ours']:.0%}, vespa feed {busy['vespa feed']:.0%}")
    if rows["ours"][0]["profile"]:
        print("\nour client's loop thread, round 1 (cProfile, by own time):\n" + rows["ours"][0]["profile"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary = {
        "docs": args.docs,
        "operations": len(writes),
        "concurrency": args.concurrency,
        "compress": args.compress,
        "embeddings": embeddings,
        "median_docs_per_s": {"ours": ours, "vespa feed": cli},
        "ratio": ours / cli,
        "stand_in_busy": busy,
        "rounds": {
            name: [{k: v for k, v in r.items() if k != "profile"} for r in rs] for name, rs in rows.items()
        },
    }
    path = RESULTS / (
        "vespa_feed.json" if args.compress == "auto" else f"vespa_feed_compress-{args.compress}.json"
    )
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
