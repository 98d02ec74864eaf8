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

from .base import SEARCHABLE_STATUSES, BaseBackend, IndexError_, SearchHit

SCHEMA_VERSION = 1

# Web, workers and commands write the same file; a writer waits this long for another process's
# transaction before the operation fails (as retryable).
BUSY_TIMEOUT_SECONDS = 5.0

# bm25 weight of each FTS column, in column order. The title is what shoppers call a product, so a
# match there counts most; tags, vendor and type are short merchant-curated labels, strong but
# broader; the description is long prose where a word is often incidental ("fits all 16″ laptops").
COLUMN_WEIGHTS: dict[str, float] = {
    "title": 10.0,
    "tags": 5.0,
    "vendor": 4.0,
    "product_type": 4.0,
    "description": 1.0,
}
TEXT_FIELDS = tuple(COLUMN_WEIGHTS)
_WEIGHTS = tuple(COLUMN_WEIGHTS.values())
_COLUMN_INDEX = {name: i for i, name in enumerate(TEXT_FIELDS)}

TOKENIZE = "porter unicode61 remove_diacritics 2"

# BM25's term-frequency saturation (k1) and length normalization (b): the textbook values, the same
# as FTS5's bm25().
BM25_K1 = 1.2
BM25_B = 0.75

# Most matching documents ranked in Python per query. A query matching more (a common word in a big
# catalog) is first cut to this many by FTS5's bm25(), computed in C, and only those are re-ranked:
# scoring costs ~5 µs per document and query word in Python, so ranking all 10,000 matches of a
# two-word query would take ~100 ms, while 500 keep the whole search around 15 ms at 10k documents.
# The cut is safe because bm25() orders like our ranking except for the IDF of very common words,
# and the AND query leaves only documents that contain every word anyway; and shoppers look at the
# first page or two, not at the 500th match.
MAX_SCORED_CANDIDATES = 500

# A pasted paragraph must not become a thousand-term query; shoppers type a handful of words.
MAX_QUERY_TERMS = 32

# Error codes worth retrying: another process holds the file, or the disk/filesystem hiccupped.
_RETRYABLE_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
     sqlite3.SQLITE_PROTOCOL}
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
# Per connection, in its private temp schema (so they need no write to the shared file, no schema
# version, and exist whatever version wrote the file): `documents_fts_instance` lists every
# occurrence of a term (term, doc, col, offset) for the ranking's term frequencies, and
# `query_text`, tokenized like `documents_fts`, turns query words into the terms it stores ("curly"
# -> "curli").
_TEMP_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.documents_fts_instance"
    " USING fts5vocab(main, documents_fts, instance)",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_text USING fts5(text, tokenize = '{TOKENIZE}')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms USING fts5vocab(temp, query_text, instance)",
)
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
        doc_id, body = _encode(document)
        with self._writing("put") as conn:
            values = (doc_id, document.get("shop"), document.get("status"), body)
            pk = conn.execute(_UPSERT, values).fetchall()[0][0]
            _write_text(conn, pk, document)

    def update(self, doc_id: str, fields: dict[str, Any]) -> bool:
        if fields.get("id", doc_id) != doc_id:
            raise IndexError_(f"update of {doc_id} may not change its id", retryable=False)
        with self._writing("update") as conn:
            row = conn.execute("SELECT pk, body FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                return False
            pk, stored = row[0], orjson.loads(row[1])
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

    def delete(self, doc_id: str) -> bool:
        with self._writing("delete") as conn:
            rows = conn.execute("DELETE FROM documents WHERE doc_id = ? RETURNING pk", (doc_id,)).fetchall()
            for (pk,) in rows:
                conn.execute("DELETE FROM documents_fts WHERE rowid = ?", (pk,))
        return bool(rows)

    def clear(self) -> None:
        with self._writing("clear") as conn:
            conn.execute("DELETE FROM documents")
            conn.execute("DELETE FROM documents_fts")

    # --- reads ----------------------------------------------------------------------------------

    def get(self, doc_id: str) -> dict[str, Any] | None:
        with _index_errors("get"):
            row = self._conn().execute("SELECT body FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def count(self, *, shop: str | None = None) -> int:
        with _index_errors("count"):
            if shop is None:
                cursor = self._conn().execute("SELECT count(*) FROM documents")
            else:
                cursor = self._conn().execute("SELECT count(*) FROM documents WHERE shop = ?", (shop,))
            return cursor.fetchone()[0]

    def search(
        self,
        query: str,
        *,
        shop: str | None = None,
        statuses: tuple[str, ...] = SEARCHABLE_STATUSES,
        limit: int = 10,
    ) -> list[SearchHit]:
        phrases = query_phrases(query)
        if not statuses or limit <= 0 or not phrases:
            return []
        with _index_errors("search"):
            conn = self._conn()
            terms = _tokenize(conn, phrases)
            # One read snapshot for the several statements: a document deleted meanwhile must not
            # be a candidate without a body.
            with _reading(conn):
                # All words first; when that finds nothing, any word (ranked by how many match).
                for fts_query in _fts_queries(phrases):
                    candidates = _candidates(conn, fts_query, shop=shop, statuses=tuple(statuses))
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
            with _transaction(conn):
                yield conn


@dataclass(frozen=True, slots=True)
class Phrase:
    """One word of the query as FTS5 sees it: a quoted string, a prefix when `prefix`."""

    word: str
    prefix: bool = False

    @property
    def fts(self) -> str:
        return _quote(self.word) + ("*" if self.prefix else "")


def query_phrases(query: str) -> list[Phrase]:
    """The words of free user text as FTS5 phrases; [] when there is nothing to find.

    Every word is a quoted FTS5 string, so nothing the user types is read as FTS5 syntax (AND, OR,
    NEAR, *, -, parentheses, column filters); inside the quotes the tokenizer splits "t-shirt" into
    the phrase "t shirt". The last word is a prefix ("jack" finds "jacket") unless the user already
    ended it with punctuation or a space.
    """
    words = [word for word in query.split() if _has_token_char(word)][:MAX_QUERY_TERMS]
    if not words:
        return []
    phrases = [Phrase(word) for word in words]
    if _has_token_char(query[-1]):
        phrases[-1] = Phrase(words[-1], prefix=True)
    return phrases


def fts_queries(query: str) -> list[str]:
    """FTS5 queries for free user text: all words, then any word; [] when there is nothing to find."""
    return _fts_queries(query_phrases(query))


def _fts_queries(phrases: list[Phrase]) -> list[str]:
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
    conn: sqlite3.Connection, fts_query: str, *, shop: str | None, statuses: tuple[str, ...]
) -> list[tuple[int, str]]:
    """(pk, doc_id) of the documents matching `fts_query`, at most MAX_SCORED_CANDIDATES of them."""
    # Only constants and placeholders are interpolated; user text is bound as a parameter.
    sql = (
        "SELECT d.pk, d.doc_id"  # noqa: S608
        " FROM documents_fts CROSS JOIN documents AS d ON d.pk = documents_fts.rowid"
        f" WHERE documents_fts MATCH ? AND d.status IN ({', '.join('?' * len(statuses))})"
    )
    params: list[Any] = [fts_query, *statuses]
    if shop is not None:
        sql += " AND d.shop = ?"
        params.append(shop)
    # Usually all matches fit, and collecting them is cheaper than ranking them with bm25().
    rows = conn.execute(sql + " LIMIT ?", [*params, MAX_SCORED_CANDIDATES + 1]).fetchall()
    if len(rows) <= MAX_SCORED_CANDIDATES:
        return rows
    sql += f" ORDER BY {_BM25}, d.pk LIMIT ?"
    return conn.execute(sql, [*params, MAX_SCORED_CANDIDATES]).fetchall()


def _rank(
    conn: sqlite3.Connection,
    phrases: list[Phrase],
    terms: list[tuple[str, ...]],
    candidates: list[tuple[int, str]],
    limit: int,
) -> list[SearchHit]:
    """The best `limit` candidates by BM25, summed over phrases and columns, best first.

    A phrase's score in one column of a document is the column's weight (COLUMN_WEIGHTS) times
    idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average length)), with tf its
    occurrences there and the lengths those of the column; a phrase's IDF is Lucene's,
    ln(1 + (N - n + 0.5) / (n + 0.5)) for n of the N documents containing it, which stays positive
    however common the word: FTS5's clamps to 1e-6 past n = N / 2. N and n count the whole index
    (every shop and status), like FTS5's. Ties go to the smaller document id.
    """
    pks = [pk for pk, _ in candidates]
    pk_list = orjson.dumps(pks).decode()
    total_docs, average_lengths = _totals(conn)
    lengths = _column_lengths(conn, pk_list)
    scores = dict.fromkeys(pks, 0.0)
    k1, b = BM25_K1, BM25_B
    for phrase, phrase_terms in zip(phrases, terms, strict=True):
        if not phrase_terms:
            continue  # no token at all: matches nothing, as in FTS5
        (n,) = conn.execute(
            "SELECT count(*) FROM documents_fts WHERE documents_fts MATCH ?", (phrase.fts,)
        ).fetchone()
        idf = math.log(1.0 + (max(total_docs, n) - n + 0.5) / (n + 0.5))
        for (pk, column), tf in _term_frequencies(conn, phrase_terms, phrase.prefix, pk_list).items():
            average = average_lengths[column]
            norm = 1.0 - b + b * lengths[pk][column] / average if average > 0 else 1.0
            scores[pk] += _WEIGHTS[column] * idf * tf * (k1 + 1.0) / (tf + k1 * norm)
    best = sorted(candidates, key=lambda row: (-scores[row[0]], row[1]))[:limit]
    bodies = dict(
        conn.execute(
            "SELECT pk, body FROM documents WHERE pk IN (SELECT value FROM json_each(?))",
            (orjson.dumps([pk for pk, _ in best]).decode(),),
        ).fetchall()
    )
    return [SearchHit(id=doc_id, score=scores[pk], document=orjson.loads(bodies[pk])) for pk, doc_id in best]


def _tokenize(conn: sqlite3.Connection, phrases: list[Phrase]) -> list[tuple[str, ...]]:
    """The terms `documents_fts` stores for each phrase's word, in order ("Curly" -> ("curli",)).

    The words go through a scratch FTS5 table with the same tokenizer, so they are split, folded
    and stemmed exactly as FTS5 does for the query itself.
    """
    conn.execute("DELETE FROM temp.query_text")
    conn.executemany(
        "INSERT INTO temp.query_text (rowid, text) VALUES (?, ?)",
        [(i, phrase.word) for i, phrase in enumerate(phrases)],
    )
    rows = conn.execute("SELECT doc, offset, term FROM temp.query_terms ORDER BY doc, offset").fetchall()
    conn.execute("DELETE FROM temp.query_text")
    terms: list[list[str]] = [[] for _ in phrases]
    for i, _, term in rows:
        terms[i].append(term)
    return [tuple(phrase_terms) for phrase_terms in terms]


def _term_frequencies(
    conn: sqlite3.Connection, terms: tuple[str, ...], prefix: bool, pk_list: str
) -> Counter[tuple[int, int]]:
    """Occurrences of the phrase `terms` (the last one a prefix when `prefix`) per (pk, column) of
    the documents in `pk_list` (a JSON array)."""
    where = " AND doc IN (SELECT value FROM json_each(?))"

    def condition(i: int) -> tuple[str, tuple[str, ...]]:
        if prefix and i == len(terms) - 1:
            # Every term starting with it; U+10FFFF sorts after any character that can follow.
            return "term >= ? AND term < ?", (terms[i], terms[i] + "\U0010ffff")
        return "term = ?", (terms[i],)

    if len(terms) == 1:
        sql, params = condition(0)
        rows = conn.execute(
            f"SELECT doc, col, count(*) FROM temp.documents_fts_instance WHERE {sql}{where}"  # noqa: S608
            " GROUP BY doc, col",
            (*params, pk_list),
        ).fetchall()
        return Counter({(pk, _COLUMN_INDEX[col]): n for pk, col, n in rows})
    # A phrase of several terms ("t-shirt" is "t shirt"): positions where each term follows the one
    # before it in the same column.
    starts: set[tuple[int, str, int]] | None = None
    for i in range(len(terms)):
        sql, params = condition(i)
        rows = conn.execute(
            f"SELECT doc, col, offset FROM temp.documents_fts_instance WHERE {sql}{where}",  # noqa: S608
            (*params, pk_list),
        ).fetchall()
        found = {(pk, col, offset - i) for pk, col, offset in rows}
        starts = found if starts is None else starts & found
        if not starts:
            break
    return Counter((pk, _COLUMN_INDEX[col]) for pk, col, _ in starts or ())


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


def _column_lengths(conn: sqlite3.Connection, pk_list: str) -> dict[int, list[int]]:
    """Each column's length in tokens for the documents in `pk_list` (a JSON array), from FTS5's
    %_docsize table (one varint per column, in column order)."""
    rows = conn.execute(
        "SELECT id, sz FROM documents_fts_docsize WHERE id IN (SELECT value FROM json_each(?))", (pk_list,)
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
    """One read snapshot (WAL) for several statements."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        if conn.in_transaction:
            conn.execute("COMMIT")


@contextmanager
def _index_errors(action: str) -> Iterator[None]:
    """Turn SQLite errors into IndexError_, retryable when the same call may succeed later."""
    try:
        yield
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        retryable = code is not None and (code & 0xFF) in _RETRYABLE_CODES
        raise IndexError_(f"embedded index {action} failed: {exc}", retryable=retryable) from exc
