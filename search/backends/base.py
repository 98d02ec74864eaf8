"""The index backend contract. Every backend (embedded, vespa) passes one contract test suite.

A document is a flat dict produced by `search.documents.product_document`; its `id` is the
document id. Backends store what they are given and never decide what changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SEARCHABLE_STATUSES = ("active",)
SEARCH_MODES = ("bm25", "semantic", "hybrid")
# One version-vector component per writer; each writer owns a disjoint group of fields and the
# document keeps the component of the last write of each group as `vv_<writer>`.
WRITERS = ("shopify", "inventory", "embedding", "scoring", "admin")


def version_field(writer: str) -> str:
    return f"vv_{writer}"


class WriteOutcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the document already has this writer's version or a newer one
    MISSING = "missing"  # no such document and the write may not create it
    RETRYABLE = "retryable"  # 429, 503, connection trouble: try again later
    PERMANENT = "permanent"  # 400, 413: the same write will never succeed
    BLOCKED = "blocked"  # 507 feed blocked: the index refuses every write for now


@dataclass(slots=True)
class IndexWrite:
    """A conditional partial write of one writer's field group (or a conditional delete)."""

    doc_id: str
    writer: str
    version: int
    fields: dict[str, Any] = field(default_factory=dict)
    create: bool = False  # only the content writer may create a document
    delete: bool = False


@dataclass(slots=True)
class WriteResult:
    write: IndexWrite
    outcome: WriteOutcome
    error: str = ""


class IndexError_(Exception):
    """An index operation failed; `retryable` says whether trying again may succeed.

    `blocked` means the index refuses all writes for now (Vespa's 507 "feed blocked", a full
    disk): the pipeline pauses writing and alerts instead of burning retries.
    """

    def __init__(self, message: str, *, retryable: bool, blocked: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable or blocked
        self.blocked = blocked


@dataclass(slots=True)
class SearchHit:
    id: str
    score: float
    document: dict[str, Any] = field(default_factory=dict)


class BaseBackend:
    """Base class of index backends. Subclasses implement every method below."""

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        self.alias = alias
        self.params = params

    @classmethod
    def longest_write_seconds(cls, params: dict[str, Any]) -> float | None:
        """The longest one `write` call can take with these settings, retries included (None:
        not bounded by the backend's own settings). The drain's lease must outlast it."""
        return None

    def put(self, document: dict[str, Any]) -> None:
        """Create or replace the whole document `document["id"]` (reconcile's repair and tests;
        the pipeline writes through `write`)."""
        raise NotImplementedError

    def write(self, writes: list[IndexWrite]) -> list[WriteResult]:
        """Apply conditional partial writes, one result per write, in order.

        A write applies only if the document's `vv_<writer>` is missing or lower than
        `write.version`; it then assigns `write.fields` and `vv_<writer>` and leaves every other
        field alone. On a missing document it creates one only when `write.create` is set,
        otherwise the outcome is MISSING and nothing is created. A delete removes the document
        under the same condition. Writes to one document apply in list order. Failures are
        reported per write (RETRYABLE, PERMANENT, BLOCKED), never raised.
        """
        raise NotImplementedError

    def update(self, doc_id: str, fields: dict[str, Any]) -> bool:
        """Assign `fields` on an existing document, leaving every other field as it is.

        Returns False (and creates nothing) when the document does not exist: a partial update
        must never create a half-empty document.
        """
        raise NotImplementedError

    def delete(self, doc_id: str) -> bool:
        """Remove the document. Returns False when it did not exist (not an error)."""
        raise NotImplementedError

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """The stored document, or None."""
        raise NotImplementedError

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
        """Documents matching `query`, best first.

        Only documents whose status is in `statuses` are returned (by default only active ones, so
        draft and archived products never reach shoppers), restricted to `shop` when given.

        Modes (see SEARCH_MODES):
        - `bm25`: documents matching the query's words, by BM25 over the text fields with the
          weights of `search.fields`.
        - `semantic`: the `limit` documents with an embedding nearest to `query_vector` (the
          caller embeds the query), by cosine similarity; exact, not approximate, on the embedded
          backend. Documents without an embedding are not returned.
        - `hybrid`: the union of the BM25 matches and the nearest neighbours, ranked by
          `(1 - semantic_weight) * bm25_n + semantic_weight * cosine_n + trend_boost * trend_score`
          where `bm25_n` and `cosine_n` are each scaled linearly to [0, 1] over the candidates
          (min -> 0, max -> 1; all equal -> 1; a candidate the side did not find -> 0) and a
          missing trend score counts as 0.
        `trend_boost` also applies, added the same way, to the bm25 and semantic scores.
        """
        raise NotImplementedError

    def documents(self, *, shop: str) -> Iterator[dict[str, Any]]:
        """Every stored document of one shop (reconciliation), read in bounded pages."""
        raise NotImplementedError

    def count(self, *, shop: str | None = None) -> int:
        """Number of documents, for one shop or all."""
        raise NotImplementedError

    def clear(self) -> None:
        """Remove every document (tests, and rebuilding an index from the stored truth)."""
        raise NotImplementedError

    def ping(self) -> None:
        """Return if the index would accept a write now; raise IndexError_ (retryable) if not."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the backend may be used again afterwards (it reopens)."""
