"""Search latency per mode (bm25, semantic, hybrid) over the real catalog replicated to 10,000
products in the embedded index.

The 84 real products are embedded once with the real model; each copy gets a numbered title, a
vector nudged by a little noise (renormalized) and a random trend score, so the index holds
10,000 distinct documents with realistic text and vectors. Shopper-like queries are embedded once
beforehand (the API embeds per query: `query_embed` below is that cost, measured apart). Each mode
runs every query --repeat times, interleaved; p50 and p99 per mode are printed and written to
bench/results/search_latency.json. The baseline is bm25, the mode we had.

Usage: .venv/bin/python bench/search_latency.py [--products 10000] [--repeat 20]
Needs nothing but the venv (no database: the index is a temporary SQLite file).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.update(SECRET_KEY="bench-only", DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="ERROR")

QUERIES = [
    "curly wig",
    "kinky curly wig",
    "brazilian body wave",
    "clip-in extensions",
    "lace frontal",
    "straight bundles",
    "blonde highlight wig",
    "u part wig",
    "closure 4x4",
    "deep wave",
    "ponytail",
    "tape in",
    "natural black hair",
    "silk base closure",
    "short bob wig",
    "glueless",
    "water wave",
    "hd lace",
    "loose curly weft",
    "braided wig",
]
SHOP = "bench-search.myshopify.com"
CATALOG = "catalog/products_export__hair-extensions-store_2025__84-products.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    import django

    django.setup()
    from bench.common import results_write
    from catalog.normalize.fields import html_to_text
    from search.backends.embedded import EmbeddedBackend
    from search.embeddings import SentenceTransformerEncoder
    from tests.helpers import shared_fixture

    encoder = SentenceTransformerEncoder()
    rows = [r for r in csv.DictReader(shared_fixture(CATALOG).open(encoding="utf-8-sig")) if r.get("Title")]
    texts = [
        "\n".join(
            x for x in (r["Title"], r["Type"], r["Vendor"], r["Tags"], html_to_text(r["Body (HTML)"])) if x
        )
        for r in rows
    ]
    vectors = encoder.encode(texts, batch_size=32)
    encoder.encode(["warm-up"], batch_size=1)
    started = time.perf_counter()
    query_vectors = {q: encoder.encode([q], batch_size=1)[0].tolist() for q in QUERIES}
    embed_ms = (time.perf_counter() - started) * 1000 / len(QUERIES)
    backend = EmbeddedBackend("bench", {"PATH": str(Path(tempfile.mkdtemp()) / "index.sqlite3")})
    build_index(backend, rows, vectors, args.products)
    timings: dict[str, list[float]] = {"bm25": [], "semantic": [], "hybrid": []}
    for _ in range(args.repeat):
        for query in QUERIES:
            for mode in timings:
                started = time.perf_counter()
                backend.search(
                    query,
                    shop=SHOP,
                    limit=10,
                    mode=mode,
                    query_vector=query_vectors[query] if mode != "bm25" else None,
                    trend_boost=0.2 if mode == "hybrid" else 0.0,
                )
                timings[mode].append((time.perf_counter() - started) * 1000)
    summary = {"products": args.products, "queries": len(QUERIES), "repeat": args.repeat}
    for mode, values in timings.items():
        p50, p99 = np.percentile(values, 50), np.percentile(values, 99)
        summary[mode] = {"p50_ms": round(float(p50), 2), "p99_ms": round(float(p99), 2)}
        print(f"{mode:>8}: p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    summary["query_embed_ms_mean"] = round(embed_ms, 2)
    base = summary["bm25"]["p50_ms"]
    for mode in ("semantic", "hybrid"):
        summary[mode]["p50_vs_bm25"] = round(summary[mode]["p50_ms"] / base, 2)
    print(f"query embedding (the API's extra cost for semantic/hybrid): {embed_ms:.1f} ms per query")
    print(json.dumps(summary, indent=2))
    print(f"written to {results_write('search_latency', summary)}")


def _parts(row: dict) -> tuple[str, ...]:
    from catalog.normalize.fields import html_to_text

    return (row["Title"], row["Type"], row["Vendor"], row["Tags"], html_to_text(row["Body (HTML)"]))


def build_index(backend, rows, vectors, count: int) -> None:
    from catalog.normalize.fields import html_to_text
    from search.backends.base import IndexWrite

    rng = np.random.default_rng(7)
    pyrng = random.Random(7)
    writes = []
    for n in range(count):
        row, base = rows[n % len(rows)], vectors[n % len(rows)]
        copy = n // len(rows)
        vector = base + rng.normal(0.0, 0.02, size=base.shape).astype(np.float32)
        vector /= np.linalg.norm(vector)
        doc_id = str(n + 1)
        fields = {
            "shop": SHOP,
            "title": f"{row['Title']} No. {copy}" if copy else row["Title"],
            "description": html_to_text(row["Body (HTML)"]),
            "vendor": row["Vendor"],
            "product_type": row["Type"],
            "tags": [t.strip() for t in row["Tags"].split(",") if t.strip()],
            "status": "active",
        }
        writes.append(IndexWrite(doc_id, "shopify", 1, fields, create=True))
        writes.append(
            IndexWrite(doc_id, "embedding", 1, {"embedding": vector.tolist(), "embedding_model": "m"})
        )
        writes.append(IndexWrite(doc_id, "scoring", 1, {"trend_score": pyrng.random()}))
        if len(writes) >= 3000:
            backend.write(writes)
            writes = []
    backend.write(writes)
    print(f"{backend.count()} documents indexed")


if __name__ == "__main__":
    main()
