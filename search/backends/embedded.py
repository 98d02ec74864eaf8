"""Embedded index backend: one SQLite file with FTS5, shared by every process on the host.

Each document lives as JSON in `documents` (with `shop` and `status` copied into columns for
filtering) and its text lives in the FTS5 table `documents_fts` under the same rowid. Every write
changes both inside one transaction, so no reader sees a document without its text or the reverse.

FTS5 finds the matching documents (tokenizing, stemming, prefixes, shop and status filters); they
are ranked here, in Python, by BM25 with a Lucene-style IDF (see `_rank`). FTS5's own bm25() clamps
the IDF of a word found in more than half the documents to almost nothing, and in a shop's catalog
the words shoppers type ("curly wig" in a wig shop) are exactly those: its ranking then ignores them.
"""

from __future__ import annotations

import heapq
import math
import os
import sqlite3
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..fields import TEXT_WEIGHTS
from . import vectors
from .base import (
    SEARCH_MODES,
    SEARCHABLE_STATUSES,
    BaseBackend,
    IndexError_,
    IndexWrite,
    SearchHit,
    WriteOutcome,
    WriteResult,
    version_field,
)

SCHEMA_VERSION = 2  # 2: the vectors table (search/backends/vectors.py)
DOCUMENT_PAGE = 1000  # documents() reads by keyset pages: bounded memory on any catalog size

# Web, workers and commands write the same file; a writer waits this long for another process's
# transaction before the operation fails (as retryable).
BUSY_TIMEOUT_SECONDS = 5.0

# bm25 weight of each FTS column, in column order (the shared field definition says why).
COLUMN_WEIGHTS: dict[str, float] = dict(TEXT_WEIGHTS)
TEXT_FIELDS = tuple(COLUMN_WEIGHTS)
_TITLE_FIELD = TEXT_FIELDS[0]  # the strongest, and the first length in FTS5's %_docsize records
_WEIGHTS = tuple(COLUMN_WEIGHTS.values())
_COLUMN_INDEX = {name: i for i, name in enumerate(TEXT_FIELDS)}

TOKENIZE = "porter unicode61 remove_diacritics 2"

# BM25's term-frequency saturation (k1) and length normalization (b): the textbook values, the same
# as FTS5's bm25().
BM25_K1 = 1.2
BM25_B = 0.75

# What a query word's matches in its other columns add to its best column's score: per word, the
# score is best + COLUMN_TIE_BREAKER * (sum - best) over the columns' BM25 (a dis-max, as in
# Lucene's multi-field queries), not the plain sum. With the sum, a product repeating one query
# word in its title, tags and type ("Loose Curly Frontal", tagged "curly", of type "Loose Curly")
# scores about as well as one with both words in its title ("Kinky Curly Wig").
COLUMN_TIE_BREAKER = 0.3

# Most documents ranked per search, in Python. Ranking costs ~12 µs a document (copying and
# tokenizing its title, tags, vendor and type, reading its lengths, scoring them, and its prose if
# it gets near the top): ranking all ~6,000 matches of "curly wig" in a synthetic 10,000-product
# catalog took 73 ms (p50), against 14 ms with this cap. When more match, `_candidates` keeps the
# likeliest to rank first: on that catalog, 13 of 18 queries tried got the same top 20 as when
# ranking every match, and the others 14 to 19 of them (any-word fallbacks, and words in nearly
# every product, whose near-ties are decided by the prose). Shoppers look at the first page or two.
MAX_SCORED_CANDIDATES = 500

# The column ranked last, and only where it can still matter (see `_rank`): long prose, costly to
# tokenize, and weighed least. Its documents are scored in batches of at least PROSE_BATCH.
PROSE_FIELD = "description"
PROSE_BATCH = 40

# A pasted paragraph must not become a thousand-term query; shoppers type a handful of words.
MAX_QUERY_TERMS = 32

# Error codes worth retrying: another process holds the file, or the disk/filesystem hiccupped.
_RETRYABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_PROTOCOL,
    }
)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS documents (
        pk INTEGER PRIMARY KEY,
        doc_id TEXT NOT NULL UNIQUE,
        shop TEXT,
        status TEXT,
        body TEXT NOT NULL
    )""",
    # One composite index serves count(shop) and shop+status filters alike.
    "CREATE INDEX IF NOT EXISTS documents_shop_status ON documents (shop, status)",
    f"""CREATE VIRTUAL TABLE IF NOT EXISTS documents_fts USING fts5(
        {", ".join(TEXT_FIELDS)},
        tokenize = '{TOKENIZE}'
    )""",
)
# Scratch FTS5 tables (same tokenizer) in each connection's private temp schema, with fts5vocab
# 'instance' tables listing each occurrence of a term in them as (term, doc, col, offset):
# `query_text` turns query words into the terms the index holds ("Curly" -> "curli"), and
# `candidate_labels` and `candidate_prose` hold a search's candidates, whose occurrences of the
# query's terms give the ranking's term frequencies. Being temporary, they need no write to the
# shared file nor a schema version, and work with a file any version wrote.
_SCRATCH_COLUMNS = {
    "query_text": ("text",),
    "candidate_labels": tuple(name for name in TEXT_FIELDS if name != PROSE_FIELD),
    "candidate_prose": (PROSE_FIELD,),
}
_TEMP_SCHEMA = tuple(
    statement
    for table, columns in _SCRATCH_COLUMNS.items()
    for statement in (
        f"""CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table} USING fts5(
            {", ".join(columns)}, content = '', columnsize = 0, tokenize = '{TOKENIZE}'
        )""",
        f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table}_terms USING fts5vocab(temp, {table}, instance)",
    )
)
_SCHEMA += vectors.SCHEMA
_BM25 = f"bm25(documents_fts, {', '.join(str(w) for w in COLUMN_WEIGHTS.values())})"
_UPSERT = """
    INSERT INTO documents (doc_id, shop, status, body) VALUES (?, ?, ?, ?)
    ON CONFLICT (doc_id) DO UPDATE SET shop = excluded.shop, status = excluded.status, body = excluded.body
    RETURNING pk
"""


class EmbeddedBackend(BaseBackend):
    """In-process index in its own SQLite file (`params["PATH"]`), one connection per thread."""

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        if str(params["PATH"]) == ":memory:":
            # Each thread's connection would get its own empty database.
            raise ValueError("EmbeddedBackend needs a file PATH; ':memory:' is not supported")
        self.path = Path(params["PATH"])
        self.timeout = float(params.get("TIMEOUT", BUSY_TIMEOUT_SECONDS))
        self._local = threading.local()
        # Connections a forked child inherited: SQLite forbids using them in the child, and closing
        # them there could disturb the parent's locks, so they are kept referenced and left alone.
        self._inherited: list[sqlite3.Connection] = []

    # --- writes ---------------------------------------------------------------------------------

    def put(self, document: dict[str, Any]) -> None:
        document = dict(document)
        embedding = document.pop("embedding", None)  # kept in the vectors table, not the body
        doc_id, body = _encode(document)
        with self._writing("put") as conn:
            values = (doc_id, document.get("shop"), document.get("status"), body)
            pk = conn.execute(_UPSERT, values).fetchall()[0][0]
            _write_text(conn, pk, document)
            vectors.store(conn, pk, embedding)

    def update(self, doc_id: str, fields: dict[str, Any]) -> bool:
        if fields.get("id", doc_id) != doc_id:
            raise IndexError_(f"update of {doc_id} may not change its id", retryable=False)
        with self._writing("update") as conn:
            row = conn.execute("SELECT pk, body FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                return False
            pk, stored = row[0], orjson.loads(row[1])
            fields = dict(fields)
            if "embedding" in fields:
                vectors.store(conn, pk, fields.pop("embedding"))
            merged = {**stored, **fields}
            if merged == stored:
                return True  # a redelivered update: nothing to write
            _, body = _encode(merged)
            conn.execute(
                "UPDATE documents SET shop = ?, status = ?, body = ? WHERE pk = ?",
                (merged.get("shop"), merged.get("status"), body, pk),
            )
            # Inventory and price updates are the common case; they leave the text index alone.
            if any(merged.get(name) != stored.get(name) for name in TEXT_FIELDS):
                _write_text(conn, pk, merged)
        return True

    def write(self, writes: list[IndexWrite]) -> list[WriteResult]:
        try:
            with self._writing("write") as conn:
                return [_apply_write(conn, w) for w in writes]
        except IndexError_ as exc:
            # The whole transaction failed (e.g. locked): every write in it shares the outcome.
            outcome = WriteOutcome.RETRYABLE if exc.retryable else WriteOutcome.PERMANENT
            return [WriteResult(w, outcome, str(exc)) for w in writes]

    def delete(self, doc_id: str) -> bool:
        with self._writing("delete") as conn:
            rows = conn.execute("DELETE FROM documents WHERE doc_id = ? RETURNING pk", (doc_id,)).fetchall()
            for (pk,) in rows:
                conn.execute("DELETE FROM documents_fts WHERE rowid = ?", (pk,))
                vectors.drop(conn, pk)
        return bool(rows)

    def clear(self) -> None:
        with self._writing("clear") as conn:
            conn.execute("DELETE FROM documents")
            conn.execute("DELETE FROM documents_fts")
            vectors.drop(conn)

    # --- reads ----------------------------------------------------------------------------------

    def get(self, doc_id: str) -> dict[str, Any] | None:
        with _index_errors("get"):
            conn = self._conn()
            with _reading(conn):
                row = conn.execute("SELECT pk, body FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
                if row is None:
                    return None
                documents = {row[0]: orjson.loads(row[1])}
                vectors.attach(conn, documents)
        return documents[row[0]]

    def count(self, *, shop: str | None = None) -> int:
        with _index_errors("count"):
            if shop is None:
                cursor = self._conn().execute("SELECT count(*) FROM documents")
            else:
                cursor = self._conn().execute("SELECT count(*) FROM documents WHERE shop = ?", (shop,))
            return cursor.fetchone()[0]

    def ping(self) -> None:
        # Writes are what the pipeline needs: take the write lock (and give it back at once), so a
        # file another process holds locked does not count as healthy.
        with _index_errors("ping"):
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")

    def documents(self, *, shop: str) -> Iterator[dict[str, Any]]:
        last = 0
        while True:
            with _index_errors("documents"):
                rows = (
                    self._conn()
                    .execute(
                        "SELECT pk, body FROM documents WHERE shop = ? AND pk > ? ORDER BY pk LIMIT ?",
                        (shop, last, DOCUMENT_PAGE),
                    )
                    .fetchall()
                )
            page = {pk: orjson.loads(body) for pk, body in rows}
            with _index_errors("documents"):
                vectors.attach(self._conn(), page)
            yield from page.values()
            if len(rows) < DOCUMENT_PAGE:
                return
            last = rows[-1][0]

    def search(
        self,
        query: str,
        *,
        shop: str | None = None,
        statuses: tuple[str, ...] = SEARCHABLE_STATUSES,
        limit: int = 10,
        mode: str = "bm25",
        query_vector: list[float] | None = None,
        semantic_weight: float = 0.5,
        trend_boost: float = 0.0,
    ) -> list[SearchHit]:
        if mode not in SEARCH_MODES:
            raise ValueError(f"unknown search mode {mode!r}; choose one of {SEARCH_MODES}")
        if mode != "bm25" and query_vector is None:
            raise ValueError(f"{mode} search needs a query_vector (the caller embeds the query)")
        if not statuses or limit <= 0:
            return []
        statuses = tuple(statuses)
        with _index_errors("search"):
            conn = self._conn()
            # One read snapshot for the several statements: a document deleted meanwhile must not
            # be a candidate without a body.
            with _reading(conn):
                if mode == "bm25" and not trend_boost:
                    return [hit for _, hit in self._bm25(conn, query, shop, statuses, limit)]
                # Ranked over each side's candidates, then combined (BaseBackend.search).
                pool = max(limit, vectors.RANK_CANDIDATES)
                text = self._bm25(conn, query, shop, statuses, pool) if mode != "semantic" else []
                cosine = {}
                if mode != "bm25":
                    cache = self._local.vectors
                    cosine = vectors.nearest(conn, cache, query_vector, shop=shop, statuses=statuses, k=pool)
                bodies = {pk: hit.document for pk, hit in text}
                vectors.read_bodies(conn, [pk for pk in cosine if pk not in bodies], bodies)
                scores = vectors.combine(
                    bm25={pk: hit.score for pk, hit in text},
                    cosine=cosine,
                    trends=vectors.trends_of(bodies),
                    semantic_weight=semantic_weight,
                    trend_boost=trend_boost,
                    hybrid=mode == "hybrid",
                )
                return vectors.ranked_hits(scores, bodies, limit)

    def _bm25(
        self, conn: sqlite3.Connection, query: str, shop: str | None, statuses: tuple[str, ...], limit: int
    ) -> list[tuple[int, SearchHit]]:
        phrases = _phrases(query)
        if not phrases:
            return []
        terms = _tokenize(conn, phrases)
        # All words first; when that finds nothing (and there are several), any word.
        for all_words, fts_query in zip((True, False), _fts_queries(phrases), strict=False):
            candidates = _candidates(conn, fts_query, all_words=all_words, shop=shop, statuses=statuses)
            if candidates:
                return _rank(conn, phrases, terms, candidates, limit)
        return []

    # --- connections ----------------------------------------------------------------------------

    def close(self) -> None:
        conn = self._local.__dict__.pop("conn", None)
        pid = self._local.__dict__.pop("pid", None)
        if conn is not None and pid == os.getpid():
            conn.close()
        elif conn is not None:
            self._inherited.append(conn)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if conn is not None:
            self._inherited.append(conn)
        conn = self._connect()
        self._local.conn, self._local.pid = conn, os.getpid()
        # Cached vectors are stamped with this connection's counters: a new one starts afresh.
        self._local.vectors = vectors.VectorCache()
        return conn

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; writes open their own (see _transaction).
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            # WAL lets readers in other processes go on while one process writes; NORMAL is
            # durable across application crashes, and an index can be rebuilt after a power cut.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Before the temp tables: changing temp_store drops them. In memory, as they are small.
            conn.execute("PRAGMA temp_store = MEMORY")
            _ensure_schema(conn)
            for statement in _TEMP_SCHEMA:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _writing(self, action: str) -> Iterator[sqlite3.Connection]:
        with _index_errors(action):
            conn = self._conn()
            try:
                with _transaction(conn):
                    yield conn
            finally:
                self._local.vectors.written()


@dataclass(frozen=True, slots=True)
class _Phrase:
    """One word of the query as FTS5 sees it: a quoted string, a prefix when `prefix`."""

    word: str
    prefix: bool = False

    @property
    def fts(self) -> str:
        return _quote(self.word) + ("*" if self.prefix else "")


def _phrases(query: str) -> list[_Phrase]:
    """The words of free user text as FTS5 phrases; [] when there is nothing to find.

    Every word is a quoted FTS5 string, so nothing the user types is read as FTS5 syntax (AND, OR,
    NEAR, *, -, parentheses, column filters); inside the quotes the tokenizer splits "t-shirt" into
    the phrase "t shirt". The last word is a prefix ("jack" finds "jacket") unless the user already
    ended it with punctuation or a space.
    """
    words = [word for word in query.split() if _has_token_char(word)][:MAX_QUERY_TERMS]
    if not words:
        return []
    phrases = [_Phrase(word) for word in words]
    if _has_token_char(query[-1]):
        phrases[-1] = _Phrase(words[-1], prefix=True)
    return phrases


def fts_queries(query: str) -> list[str]:
    """FTS5 queries for free user text: all words, then any word; [] when there is nothing to find."""
    return _fts_queries(_phrases(query))


def _fts_queries(phrases: list[_Phrase]) -> list[str]:
    terms = [phrase.fts for phrase in phrases]
    if len(terms) <= 1:
        return terms
    return [" AND ".join(terms), " OR ".join(terms)]


def _quote(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _has_token_char(text: str) -> bool:
    # unicode61's token characters: letters, numbers and private use; the rest separate tokens. A
    # word of separators only would be an empty phrase, which matches nothing and sinks an AND.
    return any(unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "Co" for ch in text)


def _candidates(
    conn: sqlite3.Connection,
    fts_query: str,
    *,
    all_words: bool,
    shop: str | None,
    statuses: tuple[str, ...],
) -> list[int]:
    """The pks of documents matching `fts_query` in `shop` with one of `statuses`, at most
    MAX_SCORED_CANDIDATES of them.

    When more match, those most likely to rank first: for an all-words query, the ones with every
    word in the title, shortest titles first (title matches weigh most, and short titles more);
    then, to fill up, the others by FTS5's bm25(). Choosing all by bm25() would cost more and
    choose worse: its IDF ignores words in over half the catalog, so for "kinky curly wig" in a wig
    shop it would pick by "kinky" alone.
    """
    # Only constants and placeholders are interpolated; user text is bound as a parameter.
    allowed = f"SELECT pk FROM documents WHERE status IN ({', '.join('?' * len(statuses))})"  # noqa: S608
    filters = [*statuses]
    if shop is not None:
        allowed += " AND shop = ?"
        filters.append(shop)
    sql = "SELECT rowid FROM documents_fts WHERE documents_fts MATCH ? LIMIT ?"
    pks = [pk for (pk,) in conn.execute(sql, (fts_query, MAX_SCORED_CANDIDATES + 1))]
    if len(pks) <= MAX_SCORED_CANDIDATES:  # the usual case: all of them
        sql = f"{allowed} AND pk IN (SELECT value FROM json_each(?))"  # noqa: S608
        return [pk for (pk,) in conn.execute(sql, [*filters, orjson.dumps(pks).decode()])]
    # Filtering by the set of allowed pks (from the covering shop/status index) is cheaper than
    # looking up each match in `documents`; the "+" keeps SQLite from handing that IN to FTS5 as
    # one lookup per allowed pk.
    pks = []
    if all_words:
        # The first byte of a %_docsize record is the title's length in tokens (a varint: one byte
        # below 128); as a blob, it sorts by that length.
        sql = (
            "SELECT f.rowid FROM documents_fts AS f CROSS JOIN documents_fts_docsize AS s ON s.id = f.rowid"  # noqa: S608
            f" WHERE documents_fts MATCH ? AND +f.rowid IN ({allowed})"
            " ORDER BY substr(s.sz, 1, 1), f.rowid LIMIT ?"
        )
        params = [f"{_TITLE_FIELD} : ({fts_query})", *filters, MAX_SCORED_CANDIDATES]
        pks = [pk for (pk,) in conn.execute(sql, params)]
    if len(pks) < MAX_SCORED_CANDIDATES:
        sql = (
            f"SELECT rowid FROM documents_fts WHERE documents_fts MATCH ? AND +rowid IN ({allowed})"  # noqa: S608
            f" AND +rowid NOT IN (SELECT value FROM json_each(?)) ORDER BY {_BM25}, rowid LIMIT ?"
        )
        params = [fts_query, *filters, orjson.dumps(pks).decode(), MAX_SCORED_CANDIDATES - len(pks)]
        pks += [pk for (pk,) in conn.execute(sql, params)]
    return pks


def _rank(
    conn: sqlite3.Connection,
    phrases: list[_Phrase],
    terms: list[tuple[str, ...]],
    pks: list[int],
    limit: int,
) -> list[tuple[int, SearchHit]]:
    """The best `limit` of the documents `pks` (with their pks), best first; ties go to the smaller
    document id.

    A document's score sums, over the query's phrases, idf * (best + COLUMN_TIE_BREAKER * (sum -
    best)) over the phrase's BM25 in each column: the column's weight (COLUMN_WEIGHTS) times
    tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average length)), for tf occurrences in it
    and the lengths of that column. The IDF is Lucene's, ln(1 + (N - n + 0.5) / (n + 0.5)) for n of
    the N documents containing the phrase: it stays positive however common the word, where FTS5's
    bm25() drops it to 1e-6 past n = N / 2. N and n count the whole index, every shop and status,
    as FTS5's do.

    The prose column is scored last: every candidate is first scored on the other columns; then, in
    order of the best score each could still reach with its prose, candidates get their prose scored
    until none left could reach the top `limit`. The result is the same, and tokenizing the prose of
    a few dozen documents instead of hundreds saves most of the time. (What a phrase's prose could
    add is bounded by its IDF, so a rare word would make every candidate look promising: for those,
    FTS5 tells which documents' prose holds them, and the others gain nothing from it.)
    """
    pks = sorted(pks)
    total_docs, average_lengths = _totals(conn)
    lengths = _column_lengths(conn, pks)
    weighted = []  # (idf, terms, prefix) of each phrase that can match
    prose_holders: list[set[int] | None] = []  # the documents whose prose holds it, if few
    for phrase, phrase_terms in zip(phrases, terms, strict=True):
        n = _document_count(conn, phrase) if phrase_terms else 0  # no token: matches nothing
        if n == 0:
            continue
        idf = math.log(1.0 + (max(total_docs, n) - n + 0.5) / (n + 0.5))
        weighted.append((idf, phrase_terms, phrase.prefix))
        holders = None
        if n <= MAX_SCORED_CANDIDATES:  # rare: cheap to ask
            sql = "SELECT rowid FROM documents_fts WHERE documents_fts MATCH ?"
            holders = {pk for (pk,) in conn.execute(sql, (f"{PROSE_FIELD} : {phrase.fts}",))}
        prose_holders.append(holders)
    labels = _column_scores(conn, "candidate_labels", pks, weighted, lengths, average_lengths)
    # Scores without the prose, and the most the prose could add: a column's BM25 stays below its
    # weight * (k1 + 1); added to a better column it counts at the tie-breaker's rate, and as the
    # new best it demotes the old one to that rate.
    tie = COLUMN_TIE_BREAKER
    most = COLUMN_WEIGHTS[PROSE_FIELD] * (BM25_K1 + 1.0)
    partial = dict.fromkeys(pks, 0.0)
    reachable = dict.fromkeys(pks, 0.0)
    for (idf, _, _), scores, holders in zip(weighted, labels, prose_holders, strict=True):
        for pk, (best, total) in scores.items():
            partial[pk] += idf * _combined(best, total)
        for pk in pks if holders is None else holders.intersection(partial):
            best = scores.get(pk, (0.0, 0.0))[0]
            reachable[pk] += idf * max(tie * most, most - (1.0 - tie) * best)
    for pk in pks:
        reachable[pk] += partial[pk]
    pending = sorted(pks, key=lambda pk: -reachable[pk])
    final: dict[int, float] = {}
    start, batch = 0, max(4 * limit, PROSE_BATCH)
    while start < len(pending):
        if len(final) >= limit:
            cut = heapq.nlargest(limit, final.values())[-1]
            if reachable[pending[start]] < cut * (1.0 - 1e-9):
                break  # none left can make the cut
        chunk = pending[start : start + batch]
        start, batch = start + batch, 2 * batch
        final.update((pk, partial[pk]) for pk in chunk)
        prose = _column_scores(conn, "candidate_prose", chunk, weighted, lengths, average_lengths)
        for (idf, _, _), label_scores, prose_scores in zip(weighted, labels, prose, strict=True):
            for pk, (extra, _) in prose_scores.items():
                best, total = label_scores.get(pk, (0.0, 0.0))
                final[pk] += idf * (_combined(max(best, extra), total + extra) - _combined(best, total))
    rows = conn.execute(
        "SELECT pk, doc_id, body FROM documents WHERE pk IN (SELECT value FROM json_each(?))",
        (orjson.dumps(list(final)).decode(),),
    ).fetchall()
    rows.sort(key=lambda row: (-final[row[0]], row[1]))
    del rows[limit:]
    return [
        (pk, SearchHit(id=doc_id, score=final[pk], document=orjson.loads(body))) for pk, doc_id, body in rows
    ]


def _combined(best: float, total: float) -> float:
    """A phrase's score from its column scores: the best, and the others at the tie-breaker's rate."""
    return best + COLUMN_TIE_BREAKER * (total - best)


def _column_scores(
    conn: sqlite3.Connection,
    table: str,
    pks: list[int],
    weighted: list[tuple[float, tuple[str, ...], bool]],
    lengths: dict[int, list[int]],
    average_lengths: list[float],
) -> list[dict[int, tuple[float, float]]]:
    """Per phrase of `weighted`, per document of `pks` containing it in the columns of the scratch
    `table`: the best of its column scores there and their sum, IDF left out."""
    # Only constant names are interpolated.
    columns = ", ".join(_SCRATCH_COLUMNS[table])
    conn.execute(f"INSERT INTO temp.{table} ({table}) VALUES ('delete-all')")  # noqa: S608
    conn.execute(
        f"INSERT INTO temp.{table} (rowid, {columns})"  # noqa: S608
        f" SELECT rowid, {columns} FROM documents_fts WHERE rowid IN (SELECT value FROM json_each(?))",
        (orjson.dumps(pks).decode(),),
    )
    # k1 * (1 - b + b * length / average) = fixed + per_token * length, per column.
    fixed = BM25_K1 * (1.0 - BM25_B)
    per_token = [BM25_K1 * BM25_B / average if average > 0 else 0.0 for average in average_lengths]
    result = []
    for _, phrase_terms, prefix in weighted:
        scores: dict[int, tuple[float, float]] = {}
        for (pk, name), tf in _occurrences(conn, f"temp.{table}_terms", phrase_terms, prefix).items():
            column = _COLUMN_INDEX[name]
            norm = fixed + per_token[column] * lengths[pk][column]
            score = _WEIGHTS[column] * tf * (BM25_K1 + 1.0) / (tf + norm)
            best, total = scores.get(pk, (0.0, 0.0))
            scores[pk] = (max(best, score), total + score)
        result.append(scores)
    return result


def _occurrences(
    conn: sqlite3.Connection, vocabulary: str, terms: tuple[str, ...], prefix: bool
) -> Counter[tuple[int, str]]:
    """Occurrences of the phrase `terms` (the last one a prefix when `prefix`) per (rowid, column
    name), from the fts5vocab 'instance' table `vocabulary`."""

    def rows(columns: str, i: int) -> list[tuple[Any, ...]]:
        if prefix and i == len(terms) - 1:
            # Every term that starts with it: U+10FFFF sorts after any character that can follow.
            where, params = "term >= ? AND term < ?", (terms[i], terms[i] + "\U0010ffff")
        else:
            where, params = "term = ?", (terms[i],)
        return conn.execute(f"SELECT {columns} FROM {vocabulary} WHERE {where}", params).fetchall()  # noqa: S608

    if len(terms) == 1:
        return Counter(rows("doc, col", 0))
    # A phrase of several terms ("t-shirt" is "t shirt"): where each term follows the one before it
    # in the same column.
    starts: set[tuple[int, str, int]] = set()
    for i in range(len(terms)):
        found = {(pk, col, offset - i) for pk, col, offset in rows("doc, col, offset", i)}
        starts = found if i == 0 else starts & found
        if not starts:
            break
    return Counter((pk, col) for pk, col, _ in starts)


def _document_count(conn: sqlite3.Connection, phrase: _Phrase) -> int:
    """In how many documents of the whole index the phrase occurs."""
    sql = "SELECT count(*) FROM documents_fts WHERE documents_fts MATCH ?"
    return conn.execute(sql, (phrase.fts,)).fetchone()[0]


def _tokenize(conn: sqlite3.Connection, phrases: list[_Phrase]) -> list[tuple[str, ...]]:
    """The terms `documents_fts` holds for each phrase's word, in order ("T-Shirts" -> ("t", "shirt")).

    The words go through a scratch FTS5 table with the same tokenizer, so they are split, folded and
    stemmed exactly as FTS5 does with the query itself.
    """
    conn.execute("INSERT INTO temp.query_text (query_text) VALUES ('delete-all')")
    conn.executemany(
        "INSERT INTO temp.query_text (rowid, text) VALUES (?, ?)",
        [(i, phrase.word) for i, phrase in enumerate(phrases)],
    )
    terms: list[list[str]] = [[] for _ in phrases]
    rows = conn.execute("SELECT doc, offset, term FROM temp.query_text_terms ORDER BY doc, offset")
    for i, _, term in rows:
        terms[i].append(term)
    return [tuple(phrase_terms) for phrase_terms in terms]


def _totals(conn: sqlite3.Connection) -> tuple[int, list[float]]:
    """The number of rows in `documents_fts` and the average length of each column, in tokens.

    Read from FTS5's own record of them (the "averages" row, id 1 of its %_data table: varints of the
    row count, then of each column's total tokens), which FTS5 keeps up to date for its bm25().
    """
    row = conn.execute("SELECT block FROM documents_fts_data WHERE id = 1").fetchone()
    values = _varints(row[0]) if row is not None and row[0] else []
    if len(values) < 1 + len(TEXT_FIELDS) or values[0] <= 0:
        return 0, [0.0] * len(TEXT_FIELDS)
    total_docs = values[0]
    return total_docs, [total / total_docs for total in values[1 : 1 + len(TEXT_FIELDS)]]


def _column_lengths(conn: sqlite3.Connection, pks: list[int]) -> dict[int, list[int]]:
    """Each column's length in tokens for the documents `pks`, from FTS5's %_docsize table (one
    varint per column, in column order)."""
    rows = conn.execute(
        "SELECT id, sz FROM documents_fts_docsize WHERE id IN (SELECT value FROM json_each(?))",
        (orjson.dumps(pks).decode(),),
    ).fetchall()
    return {pk: _varints(sizes) for pk, sizes in rows}


def _varints(data: bytes) -> list[int]:
    """Decode SQLite varints (big-endian, 7 bits a byte while the high bit is set, 8 in a ninth)."""
    if data.isascii():
        return list(data)  # every value below 128: one byte each
    values = []
    i, end = 0, len(data)
    while i < end:
        value = 0
        for _ in range(8):
            byte = data[i]
            i += 1
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        else:
            value = (value << 8) | data[i]
            i += 1
        values.append(value)
    return values


def _apply_write(conn: sqlite3.Connection, write: IndexWrite) -> WriteResult:
    """One conditional write inside the caller's transaction (see BaseBackend.write)."""
    row = conn.execute("SELECT pk, body FROM documents WHERE doc_id = ?", (write.doc_id,)).fetchone()
    if row is None and not write.create:
        return WriteResult(write, WriteOutcome.MISSING)
    stored = orjson.loads(row[1]) if row else {"id": write.doc_id}
    current = stored.get(version_field(write.writer))
    if current is not None and current >= write.version:
        return WriteResult(write, WriteOutcome.STALE)
    if write.delete:
        if row is not None:
            conn.execute("DELETE FROM documents WHERE pk = ?", (row[0],))
            conn.execute("DELETE FROM documents_fts WHERE rowid = ?", (row[0],))
            vectors.drop(conn, row[0])
        return WriteResult(write, WriteOutcome.APPLIED)
    fields = dict(write.fields)
    has_embedding = "embedding" in fields
    embedding = fields.pop("embedding", None)  # kept in the vectors table, not the body
    merged = {**stored, **fields, "id": write.doc_id, version_field(write.writer): write.version}
    try:
        doc_id, body = _encode(merged)
        blob = vectors.encode(embedding) if has_embedding else None
    except IndexError_ as exc:
        return WriteResult(write, WriteOutcome.PERMANENT, str(exc))
    pk = conn.execute(_UPSERT, (doc_id, merged.get("shop"), merged.get("status"), body)).fetchall()[0][0]
    if has_embedding:
        vectors.store_encoded(conn, pk, blob)
    if row is None or any(merged.get(name) != stored.get(name) for name in TEXT_FIELDS):
        _write_text(conn, pk, merged)
    return WriteResult(write, WriteOutcome.APPLIED)


def _encode(document: dict[str, Any]) -> tuple[str, str]:
    """The document's id and JSON body; a malformed document is a permanent error."""
    doc_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(doc_id, str) or not doc_id:
        raise IndexError_(f"document needs a non-empty string id, got {doc_id!r}", retryable=False)
    try:
        return doc_id, orjson.dumps(document).decode()
    except orjson.JSONEncodeError as exc:
        raise IndexError_(f"document {doc_id} is not serializable: {exc}", retryable=False) from exc


def _write_text(conn: sqlite3.Connection, pk: int, document: dict[str, Any]) -> None:
    values = []
    for name in TEXT_FIELDS:
        value = document.get(name)
        if isinstance(value, list | tuple):
            value = ", ".join(str(item) for item in value)
        values.append("" if value is None else str(value))
    conn.execute("DELETE FROM documents_fts WHERE rowid = ?", (pk,))
    conn.execute(
        f"INSERT INTO documents_fts (rowid, {', '.join(TEXT_FIELDS)})"  # noqa: S608 (constant columns)
        f" VALUES (?, {', '.join('?' * len(TEXT_FIELDS))})",
        (pk, *values),
    )


def _ensure_schema(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise IndexError_(
            f"index schema version {version} is newer than this code's {SCHEMA_VERSION}", retryable=False
        )
    # Processes racing to create the schema serialize on the write lock; IF NOT EXISTS makes the
    # loser's statements no-ops.
    with _transaction(conn):
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so a busy file makes us wait (busy timeout) at BEGIN
    # rather than fail mid-transaction when a WAL read snapshot cannot be upgraded to a write.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
            conn.execute("ROLLBACK")
        raise


@contextmanager
def _reading(conn: sqlite3.Connection) -> Iterator[None]:
    """One read snapshot (WAL) for several statements; writes only go to the temp schema."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # nothing to keep: the scratch tables are refilled every time


@contextmanager
def _index_errors(action: str) -> Iterator[None]:
    """Turn SQLite errors into IndexError_, retryable when the same call may succeed later."""
    try:
        yield
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        retryable = code is not None and (code & 0xFF) in _RETRYABLE_CODES
        raise IndexError_(f"embedded index {action} failed: {exc}", retryable=retryable) from exc
