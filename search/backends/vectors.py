"""Vector search for the embedded backend: exact nearest neighbours and hybrid ranking.

Vectors live in their own table of the index file (`vectors`, float32 blobs keyed by the
document's rowid) rather than in the JSON body: a body stays small to parse, and a search reads
only the vectors. Search is exact: one matrix product over every vector the filter allows. The
matrix is cached per connection and filter, and reloaded only when the file changed (SQLite's
`data_version` moves when another connection commits; this one's write transactions are counted):
on 10,000 products a reload costs tens of milliseconds, a cached query a few.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from ..fields import EMBEDDING_DIMENSIONS
from .base import IndexError_, SearchHit

# Candidates each side (BM25, nearest neighbours) brings to hybrid ranking and to a trend-boosted
# bm25 or semantic ranking: enough that a product strong on one side and middling on the other
# still makes the union; the normalization is over these candidates (see BaseBackend.search).
RANK_CANDIDATES = 100

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS vectors (
        pk INTEGER PRIMARY KEY,
        embedding BLOB NOT NULL
    )""",
)


def encode(vector: Any) -> bytes | None:
    """A vector as the stored blob (None stays None); a malformed one is a permanent error."""
    if vector is None:
        return None
    try:
        array = np.asarray(vector, dtype="<f4")
    except (TypeError, ValueError) as exc:
        raise IndexError_(f"embedding is not a list of floats: {exc}", retryable=False) from exc
    if array.shape != (EMBEDDING_DIMENSIONS,) or not np.isfinite(array).all():
        raise IndexError_(
            f"embedding must be {EMBEDDING_DIMENSIONS} finite floats, got shape {array.shape}",
            retryable=False,
        )
    return array.tobytes()


def store_encoded(conn: sqlite3.Connection, pk: int, blob: bytes | None) -> None:
    if blob is None:
        conn.execute("DELETE FROM vectors WHERE pk = ?", (pk,))
    else:
        conn.execute("INSERT OR REPLACE INTO vectors (pk, embedding) VALUES (?, ?)", (pk, blob))


def store(conn: sqlite3.Connection, pk: int, vector: Any) -> None:
    """Keep the document's vector (None: it has none)."""
    store_encoded(conn, pk, encode(vector))


def drop(conn: sqlite3.Connection, pk: int | None = None) -> None:
    if pk is None:
        conn.execute("DELETE FROM vectors")
    else:
        conn.execute("DELETE FROM vectors WHERE pk = ?", (pk,))


def attach(conn: sqlite3.Connection, documents: dict[int, dict[str, Any]]) -> None:
    """Put each document's vector back under `embedding` (get, documents)."""
    if not documents:
        return
    rows = conn.execute(
        "SELECT pk, embedding FROM vectors WHERE pk IN (SELECT value FROM json_each(?))",
        (orjson.dumps(list(documents)).decode(),),
    )
    for pk, blob in rows:
        documents[pk]["embedding"] = np.frombuffer(blob, dtype="<f4").tolist()


@dataclass
class _Matrix:
    stamp: tuple[int, int]
    pks: np.ndarray
    vectors: np.ndarray


class VectorCache:
    """Per-connection matrices of the vectors a filter allows (one backend holds one per thread)."""

    def __init__(self) -> None:
        self._matrices: dict[tuple[str | None, tuple[str, ...]], _Matrix] = {}
        # Write transactions of this connection (its own commits do not move data_version, and
        # total_changes also counts the searches' scratch tables).
        self._writes = 0

    def written(self) -> None:
        self._writes += 1

    def matrix(
        self, conn: sqlite3.Connection, shop: str | None, statuses: tuple[str, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        stamp = (conn.execute("PRAGMA data_version").fetchone()[0], self._writes)
        key = (shop, tuple(sorted(statuses)))
        cached = self._matrices.get(key)
        if cached is None or cached.stamp != stamp:
            where, params = _filter(shop, statuses)
            rows = conn.execute(
                f"SELECT v.pk, v.embedding FROM vectors v JOIN documents d ON d.pk = v.pk WHERE {where}",  # noqa: S608
                params,
            ).fetchall()
            pks = np.fromiter((pk for pk, _ in rows), dtype=np.int64, count=len(rows))
            blob = b"".join(embedding for _, embedding in rows)
            vectors = np.frombuffer(blob, dtype="<f4").reshape(len(rows), EMBEDDING_DIMENSIONS)
            cached = self._matrices[key] = _Matrix(stamp, pks, vectors)
        return cached.pks, cached.vectors


def _filter(shop: str | None, statuses: tuple[str, ...]) -> tuple[str, list[Any]]:
    where = f"d.status IN ({', '.join('?' * len(statuses))})"
    params: list[Any] = list(statuses)
    if shop is not None:
        where += " AND d.shop = ?"
        params.append(shop)
    return where, params


def nearest(
    conn: sqlite3.Connection,
    cache: VectorCache,
    query_vector: list[float],
    *,
    shop: str | None,
    statuses: tuple[str, ...],
    k: int,
) -> dict[int, float]:
    """The k documents (rowid -> cosine) nearest to the query, exactly."""
    query = np.asarray(query_vector, dtype=np.float32)
    if query.shape != (EMBEDDING_DIMENSIONS,):
        raise ValueError(f"query_vector must have {EMBEDDING_DIMENSIONS} floats, got {query.shape}")
    norm = float(np.linalg.norm(query))
    pks, vectors = cache.matrix(conn, shop, statuses)
    if norm == 0 or len(pks) == 0:
        return {}
    # Stored vectors are unit length (the encoders normalize); dividing by the query's norm makes
    # the product a cosine for any query vector.
    scores = vectors @ (query / norm)
    k = min(k, len(pks))
    top = np.argpartition(-scores, k - 1)[:k]
    return {int(pks[i]): float(scores[i]) for i in top}


def _scaled(scores: dict[int, float]) -> dict[int, float]:
    """Linear to [0, 1] over the candidates: min -> 0, max -> 1, all equal -> 1."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return dict.fromkeys(scores, 1.0)
    return {pk: (score - low) / (high - low) for pk, score in scores.items()}


def combine(
    *,
    bm25: dict[int, float],
    cosine: dict[int, float],
    trends: dict[int, float],
    semantic_weight: float,
    trend_boost: float,
    hybrid: bool,
) -> dict[int, float]:
    """Final scores of the candidates (BaseBackend.search's formulas).

    Hybrid: (1 - w) * bm25_n + w * cosine_n + boost * trend. Otherwise the one side's raw score
    plus boost * trend.
    """
    if hybrid:
        bm25_n, cosine_n = _scaled(bm25), _scaled(cosine)
        base = {
            pk: (1.0 - semantic_weight) * bm25_n.get(pk, 0.0) + semantic_weight * cosine_n.get(pk, 0.0)
            for pk in bm25.keys() | cosine.keys()
        }
    else:
        base = dict(bm25 or cosine)
    return {pk: score + trend_boost * (trends.get(pk) or 0.0) for pk, score in base.items()}


def ranked_hits(scores: dict[int, float], bodies: dict[int, dict[str, Any]], limit: int) -> list[SearchHit]:
    """The top `limit` as hits, best first (ties by document id)."""
    order = sorted(scores, key=lambda pk: (-scores[pk], bodies[pk]["id"]))[:limit]
    return [SearchHit(id=bodies[pk]["id"], score=scores[pk], document=bodies[pk]) for pk in order]


def read_bodies(conn: sqlite3.Connection, pks: Iterable[int], bodies: dict[int, dict[str, Any]]) -> None:
    pks = list(pks)
    if not pks:
        return
    rows = conn.execute(
        "SELECT pk, body FROM documents WHERE pk IN (SELECT value FROM json_each(?))",
        (orjson.dumps(pks).decode(),),
    )
    for pk, body in rows:
        bodies[pk] = orjson.loads(body)


def trends_of(bodies: dict[int, dict[str, Any]]) -> dict[int, float]:
    return {pk: body.get("trend_score") or 0.0 for pk, body in bodies.items()}
