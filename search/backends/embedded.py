"""Embedded index backend: one SQLite file with FTS5, shared by every process on the host.

Each document lives as JSON in `documents` (with `shop` and `status` copied into columns for
filtering) and its text lives in the FTS5 table `documents_fts` under the same rowid. Every write
changes both inside one transaction, so no reader sees a document without its text or the reverse.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
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
        tokenize = 'porter unicode61 remove_diacritics 2'
    )""",
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
        if not statuses or limit <= 0:
            return []
        with _index_errors("search"):
            conn = self._conn()
            # All words first; when that finds nothing, any word (ranked by how many match).
            for fts_query in fts_queries(query):
                hits = _match(conn, fts_query, shop=shop, statuses=tuple(statuses), limit=limit)
                if hits:
                    return hits
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
            _ensure_schema(conn)
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


def fts_queries(query: str) -> list[str]:
    """FTS5 queries for free user text: all words, then any word; [] when there is nothing to find.

    Every word is a quoted FTS5 string, so nothing the user types is read as FTS5 syntax (AND, OR,
    NEAR, *, -, parentheses, column filters); inside the quotes the tokenizer splits "t-shirt" into
    the phrase "t shirt". The last word is a prefix ("jack" finds "jacket") unless the user already
    ended it with punctuation or a space.
    """
    terms = [_quote(word) for word in query.split() if _has_token_char(word)][:MAX_QUERY_TERMS]
    if not terms:
        return []
    if _has_token_char(query[-1]):
        terms[-1] += "*"
    if len(terms) == 1:
        return terms
    return [" AND ".join(terms), " OR ".join(terms)]


def _quote(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _has_token_char(text: str) -> bool:
    # unicode61's token characters: letters, numbers and private use; the rest separate tokens. A
    # word of separators only would be an empty phrase, which matches nothing and sinks an AND.
    return any(unicodedata.category(ch)[0] in "LN" or unicodedata.category(ch) == "Co" for ch in text)


def _match(
    conn: sqlite3.Connection, fts_query: str, *, shop: str | None, statuses: tuple[str, ...], limit: int
) -> list[SearchHit]:
    # Only constants and placeholders are interpolated; user text is bound as a parameter.
    sql = (
        f"SELECT d.doc_id, -{_BM25} AS score, d.body"  # noqa: S608
        " FROM documents_fts CROSS JOIN documents AS d ON d.pk = documents_fts.rowid"
        f" WHERE documents_fts MATCH ? AND d.status IN ({', '.join('?' * len(statuses))})"
    )
    params: list[Any] = [fts_query, *statuses]
    if shop is not None:
        sql += " AND d.shop = ?"
        params.append(shop)
    sql += " ORDER BY score DESC, d.doc_id LIMIT ?"
    params.append(limit)
    rows = conn.execute(sql, params).fetchall()
    return [SearchHit(id=doc_id, score=score, document=orjson.loads(body)) for doc_id, score, body in rows]


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
def _index_errors(action: str) -> Iterator[None]:
    """Turn SQLite errors into IndexError_, retryable when the same call may succeed later."""
    try:
        yield
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)
        retryable = code is not None and (code & 0xFF) in _RETRYABLE_CODES
        raise IndexError_(f"embedded index {action} failed: {exc}", retryable=retryable) from exc
