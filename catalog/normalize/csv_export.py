"""Shopify product CSV exports (legacy, 2023–2025 and the 2025 renamed dialect) as canonical products.

Shape: one row per variant plus image-only rows (Handle + Image Src), a product's rows kept together,
product-level fields only on its first row. Cells hold multi-line HTML, so only the `csv` module may
split records, and line numbers are counted from the reader, never from rows.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TextIO

from .fields import parse_int, parse_money, parse_status, parse_tags, text
from .types import CanonicalProduct, CanonicalVariant, NormalizationError

# Every dialect's header for one internal name. Matched case-insensitively, since Shopify changed
# only the case in several 2025 renames ("Option1 Name" → "Option1 name").
_ALIASES: dict[str, tuple[str, ...]] = {
    "handle": ("Handle", "URL handle"),
    "title": ("Title",),
    "body_html": ("Body (HTML)", "Description"),
    "vendor": ("Vendor",),
    "product_type": ("Type",),
    "category": ("Product Category",),
    "tags": ("Tags",),
    "published": ("Published", "Published on online store"),
    "status": ("Status",),
    "sku": ("Variant SKU", "SKU"),
    "barcode": ("Variant Barcode", "Barcode"),
    "price": ("Variant Price", "Price"),
    "compare_at_price": ("Variant Compare At Price", "Compare-at price"),
    "inventory_quantity": ("Variant Inventory Qty", "Inventory quantity"),
    "inventory_policy": ("Variant Inventory Policy",),
    "continue_selling": ("Continue selling when out of stock",),
    "image_src": ("Image Src", "Product image URL"),
    "image_position": ("Image Position",),
    **{f"option{n}_name": (f"Option{n} Name",) for n in (1, 2, 3)},
    **{f"option{n}_value": (f"Option{n} Value",) for n in (1, 2, 3)},
}
_REQUIRED = ("handle", "title")
_OPTION_VALUES = ("option1_value", "option2_value", "option3_value")
# Any of these filled makes a row a variant; image-only rows carry none of them.
_VARIANT_FIELDS = (*_OPTION_VALUES, "sku", "barcode", "price", "compare_at_price", "inventory_quantity")
# Labels before the parenthesis are localised (Swedish in some stores), so only this part is read.
_METAFIELD = re.compile(r"\(product\.metafields\.([^.()\s]+)\.([^()\s]+)\)\s*$")
_BOOLEAN = {"true": True, "false": False}
# csv's default cell limit (128 KiB) is below what a long Body (HTML) with inline styles reaches.
_MAX_CELL = 16 * 1024 * 1024


def _normalize_header(header: str) -> str:
    return " ".join(header.replace("\ufeff", "").split()).lower()


_LOOKUP = {_normalize_header(alias): name for name, aliases in _ALIASES.items() for alias in aliases}


class _Reader(Protocol):
    line_num: int

    def __next__(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class CsvItem:
    """One product of the file, or why it could not be read. `line` is where its first row starts."""

    line: int
    handle: str
    product: CanonicalProduct | None
    error: str | None


@dataclass(frozen=True, slots=True)
class _Columns:
    index: dict[str, int]  # internal name → column
    label: dict[str, str]  # internal name → the header as written, for error messages
    metafields: list[tuple[int, str]]  # column → "namespace.key"

    @classmethod
    def from_header(cls, header: list[str]) -> _Columns:
        index: dict[str, int] = {}
        label: dict[str, str] = {}
        metafields: list[tuple[int, str]] = []
        for position, raw in enumerate(header):
            name = _LOOKUP.get(_normalize_header(raw))
            if name and name not in index:
                index[name], label[name] = position, raw.replace("\ufeff", "").strip()
            match = _METAFIELD.search(raw)
            if match:
                metafields.append((position, f"{match.group(1)}.{match.group(2)}"))
        cls._check_required(index, header)
        return cls(index=index, label=label, metafields=metafields)

    @staticmethod
    def _check_required(index: dict[str, int], header: list[str]) -> None:
        missing = [" or ".join(map(repr, _ALIASES[name])) for name in _REQUIRED if name not in index]
        if missing:
            shown = ", ".join(repr(h) for h in header[:12]) + (", …" if len(header) > 12 else "")
            raise NormalizationError(
                f"not a Shopify product CSV: no {' and no '.join(missing)} column; "
                f"the header row has {len(header)} columns: {shown}"
            )


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    cells: list[str]
    columns: _Columns

    def raw(self, name: str) -> str:
        position = self.columns.index.get(name)
        if position is None or position >= len(self.cells):  # absent column or a short, ragged row
            return ""
        return self.cells[position]

    def get(self, name: str) -> str:
        return text(self.raw(name))

    def column(self, name: str) -> str:
        return f"column {self.columns.label.get(name, name)!r}"

    def fail(self, message: str) -> NormalizationError:
        return NormalizationError(f"line {self.line}: {message}")

    def is_variant(self) -> bool:
        return any(self.get(name) for name in _VARIANT_FIELDS)


def iter_csv_products(stream: TextIO) -> Iterator[CsvItem]:
    """Products of a CSV export in file order; a bad product becomes an error item and reading goes on.

    The header is checked now, not on the first `next()`, so a file that is not a product export
    fails before any work is queued. Open the file with `newline=""` (cells hold line breaks).
    """
    csv.field_size_limit(max(csv.field_size_limit(), _MAX_CELL))  # process-wide, only ever raised
    reader = csv.reader(stream)
    header = _next_record(reader, line=1)
    if header is None:
        raise NormalizationError("the CSV file is empty: expected a Shopify product export header row")
    columns = _Columns.from_header(header)
    return _iter_items(_iter_rows(reader, columns))


def _iter_rows(reader: _Reader, columns: _Columns) -> Iterator[_Row]:
    # csv.reader.line_num is the line a record ENDS on, so a record starts one after the previous end.
    start = reader.line_num + 1
    while (cells := _next_record(reader, line=start)) is not None:
        line, start = start, reader.line_num + 1
        if any(cell.strip() for cell in cells):
            yield _Row(line=line, cells=cells, columns=columns)


def _next_record(reader: _Reader, *, line: int) -> list[str] | None:
    try:
        return next(reader, None)
    except csv.Error as exc:
        # The reader cannot resynchronise after a broken record, so the rest of the file is lost.
        raise NormalizationError(f"line {line}: the CSV cannot be read from here on ({exc})") from exc


def _iter_items(rows: Iterator[_Row]) -> Iterator[CsvItem]:
    first_seen: dict[str, int] = {}
    for handle, group in itertools.groupby(rows, key=lambda row: row.get("handle")):
        block = list(group)
        line = block[0].line
        if not handle:
            error = f"line {line}: {block[0].column('handle')} is empty ({len(block)} row(s) skipped)"
            yield CsvItem(line=line, handle="", product=None, error=error)
        elif handle in first_seen:
            # Merging into a product already yielded is not possible in a stream: say so instead.
            error = (
                f"line {line}: handle {handle!r} appears again after other products (first at line "
                f"{first_seen[handle]}); a product's rows must be consecutive"
            )
            yield CsvItem(line=line, handle=handle, product=None, error=error)
        else:
            first_seen[handle] = line
            yield _item(handle, block)


def _item(handle: str, rows: list[_Row]) -> CsvItem:
    try:
        product = _product(handle, rows)
    except NormalizationError as exc:
        return CsvItem(line=rows[0].line, handle=handle, product=None, error=str(exc))
    return CsvItem(line=rows[0].line, handle=handle, product=product, error=None)


def _product(handle: str, rows: list[_Row]) -> CanonicalProduct:
    first = rows[0]
    title = first.get("title")
    if not title:
        raise first.fail(f"{first.column('title')} is empty on the product's first row")
    variant_rows = [row for row in rows if row.is_variant()]
    return CanonicalProduct(
        shopify_id=None,
        handle=handle,
        title=title,
        body_html=first.raw("body_html"),
        vendor=first.get("vendor"),
        product_type=first.get("product_type"),
        tags=parse_tags(first.get("tags")),
        status=_status(first),
        published_at=None,
        created_at=None,
        updated_at=None,
        options=_options(first, variant_rows),
        images=_images(rows),
        variants=[_variant(row, index) for index, row in enumerate(variant_rows, start=1)],
        metafields=_metafields(first),
        category=first.get("category"),
    )


def _status(first: _Row) -> str:
    status = first.get("status")
    if status:
        try:
            return parse_status(status)
        except NormalizationError as exc:
            raise first.fail(f"{first.column('status')}: {exc}") from exc
    # Exports without a Status column (or with it blank) only say whether the product is published.
    published = first.get("published")
    if not published:
        return "active"
    if published.lower() not in _BOOLEAN:
        raise first.fail(f"{first.column('published')} must be TRUE or FALSE, got {published!r}")
    return "active" if _BOOLEAN[published.lower()] else "draft"


def _options(first: _Row, variant_rows: list[_Row]) -> list[dict]:
    options = []
    for n in (1, 2, 3):
        name = first.get(f"option{n}_name")
        if name:
            values = _distinct(row.get(f"option{n}_value") for row in variant_rows)
            options.append({"name": name, "values": values})
    return options


def _variant(row: _Row, position: int) -> CanonicalVariant:
    option_values = [value for value in (row.get(name) for name in _OPTION_VALUES) if value]
    return CanonicalVariant(
        shopify_id=None,
        # Shopify's own title for a product without options is "Default Title".
        title=" / ".join(option_values) or "Default Title",
        sku=row.get("sku"),
        barcode=row.get("barcode"),  # Excel's "3.65275E+11" kept as given: the digits are already lost
        price=_money(row, "price"),
        compare_at_price=_money(row, "compare_at_price"),
        position=position,
        option_values=option_values,
        inventory_quantity=_int(row, "inventory_quantity"),
        inventory_policy=_inventory_policy(row),
    )


def _inventory_policy(row: _Row) -> str:
    policy = row.get("inventory_policy").lower()
    if policy:
        return policy
    # The 2025 dialect replaced the policy with a yes/no column.
    allowed = _BOOLEAN.get(row.get("continue_selling").lower())
    return "" if allowed is None else ("continue" if allowed else "deny")


def _images(rows: list[_Row]) -> list[str]:
    found = []
    for order, row in enumerate(rows):
        src = row.get("image_src")
        if src:
            position = _int(row, "image_position")
            found.append((position is None, position or 0, order, src))
    return _distinct(src for *_, src in sorted(found))


def _metafields(first: _Row) -> dict[str, str]:
    values = {}
    for position, key in first.columns.metafields:
        value = text(first.cells[position]) if position < len(first.cells) else ""
        if value:
            values[key] = value
    return values


def _money(row: _Row, name: str) -> Decimal | None:
    try:
        return parse_money(row.get(name), name=row.column(name))
    except NormalizationError as exc:
        raise row.fail(str(exc)) from exc


def _int(row: _Row, name: str) -> int | None:
    try:
        return parse_int(row.get(name), name=row.column(name))
    except NormalizationError as exc:
        raise row.fail(str(exc)) from exc


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))
