"""Import history from files: Shopify CSV exports, REST JSON, and bulk-operation JSONL.

Products are applied in batches (each its own transaction) through `product_apply`, so a
backfill follows the same stale/no-op rules as webhooks and cannot roll a newer product back.
A bad item is reported with its line (or item) number and the rest imports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from .models import Shop
from .normalize import (
    NormalizationError,
    detect_format,
    iter_bulk_products,
    iter_csv_products,
    product_from_rest,
)
from .normalize.types import CanonicalProduct
from .services import APPLIED, STALE, product_apply

# Big enough to amortize transaction overhead, small enough that progress shows on a large file
# and a crash loses little work.
BATCH_SIZE = 200


@dataclass(slots=True)
class SourceItem:
    where: str  # "line 12" or "item 3": what a user opens the file at
    product: CanonicalProduct | None
    error: str | None = None


@dataclass
class BatchResult:
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # imported items an operator should know about
    changed_product_ids: list[int] = field(default_factory=list)
    embed_changed: bool = False  # some product's embedded text changed
    score_changed_ids: list[int] = field(default_factory=list)  # scoring inputs changed
    items: int = 0


def backfill_batches(*, shop: Shop, path: Path, batch_size: int = BATCH_SIZE) -> Iterator[BatchResult]:
    """Apply the file's products in batches; yields what each batch did."""
    batch = BatchResult()
    try:
        for item in _items(path):
            batch.items += 1
            if item.error or item.product is None:
                batch.errors.append(f"{item.where}: {item.error}")
            else:
                _apply(shop, item, batch)
            if batch.items >= batch_size:
                yield batch
                batch = BatchResult()
    except NormalizationError:
        # The file broke part-way (bad bytes): what this batch stored is still reported, so the
        # caller indexes it and its checkpoint covers it, before the error ends the import.
        if batch.items:
            yield batch
        raise
    if batch.items:
        yield batch


def backfill_source_check(*, path: Path) -> None:
    """Raise NormalizationError unless `path` reads as an import file (its header, or first item,
    is parsed): a wrong file is refused before anything is recorded for it."""
    items = _items(path)
    try:
        next(items, None)
    finally:
        items.close()


def _apply(shop: Shop, item: SourceItem, batch: BatchResult) -> None:
    try:
        result = product_apply(shop=shop, data=item.product, source="backfill")
    except NormalizationError as exc:
        batch.errors.append(f"{item.where}: {exc}")
        return
    batch.outcomes[result.outcome] = batch.outcomes.get(result.outcome, 0) + 1
    if result.outcome == STALE and result.product is not None and result.product.deleted_at is not None:
        batch.notes.append(f"{item.where}: not brought back: {result.reason}")
    if result.outcome == APPLIED:
        batch.changed_product_ids.append(result.product.pk)
        batch.embed_changed |= result.embed_changed
        if result.score_changed:
            batch.score_changed_ids.append(result.product.pk)


def _items(path: Path) -> Iterator[SourceItem]:
    try:
        yield from _items_of_kind(path, detect_format(path))
    except UnicodeDecodeError as exc:
        raise NormalizationError(
            f"{path.name} is not UTF-8 (byte {exc.object[exc.start]:#x} at offset {exc.start}); Shopify "
            "exports are UTF-8: if a spreadsheet saved it, export it again as 'CSV UTF-8'"
        ) from exc


def _items_of_kind(path: Path, kind: str) -> Iterator[SourceItem]:
    if kind == "csv":
        with path.open(encoding="utf-8-sig", newline="") as stream:
            for row in iter_csv_products(stream):
                label = f"line {row.line}" + (f" ({row.handle})" if row.handle else "")
                # The CSV parser's messages already start with "line N:"; keep one.
                error = (
                    row.error.split(": ", 1)[1] if row.error and row.error.startswith("line ") else row.error
                )
                yield SourceItem(label, row.product, error)
    elif kind == "jsonl":
        with path.open(encoding="utf-8") as stream:
            for row in iter_bulk_products(stream):
                yield SourceItem(f"line {row.line}", row.product, row.error)
    else:
        yield from _json_items(path)


def _json_items(path: Path) -> Iterator[SourceItem]:
    raw = path.read_bytes()
    raw.decode("utf-8")  # a clear UnicodeDecodeError before orjson's vaguer one
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise NormalizationError(f"{path} is not valid JSON: {exc}") from exc
    if isinstance(data, dict) and "products" in data:
        data = data["products"]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise NormalizationError(f'{path}: expected a list of products or {{"products": [...]}}')
    for index, raw in enumerate(data, start=1):
        try:
            yield SourceItem(f"item {index}", product_from_rest(raw))
        except NormalizationError as exc:
            yield SourceItem(f"item {index}", None, str(exc))
