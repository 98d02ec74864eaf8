"""Shopify bulk-operation JSONL (GraphQL shapes) as canonical products.

Each connection node is its own line pointing at its parent with `__parentId`, and Shopify does
not promise parents come first (only `groupObjects: true` groups them), so the whole file is read
before any product is built. One product id may appear on several lines: their fields are merged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from .fields import (
    parse_datetime,
    parse_id,
    parse_int,
    parse_money,
    parse_optional_id,
    parse_status,
    parse_tags,
    text,
)
from .types import CanonicalProduct, CanonicalVariant, NormalizationError

_GID_TYPE = re.compile(r"^gid://shopify/(\w+)/")
_IMAGE_TYPES = ("Image", "MediaImage", "ProductImage")
_ID_ONLY_KEYS = {"id", "__typename"}


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One product of the file, or why it could not be read. `key` is the product's GID."""

    line: int
    key: str
    product: CanonicalProduct | None
    error: str | None


@dataclass(slots=True)
class _Node:
    line: int  # first line the product appears on
    data: dict[str, Any]
    children: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@dataclass(slots=True)
class _File:
    products: dict[str, _Node] = field(default_factory=dict)
    children: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    child_ids: set[str] = field(default_factory=set)  # variants etc.: parents of grandchildren
    errors: list[BulkItem] = field(default_factory=list)


def iter_bulk_products(stream: TextIO) -> Iterator[BulkItem]:
    """Products and error items of a bulk-operation result, in the order of their first line.

    Error texts leave the line out: it is the item's `line`.
    """
    parsed = _read(stream)
    _attach_children(parsed)
    items = parsed.errors + [_item(gid, node) for gid, node in parsed.products.items()]
    yield from sorted(items, key=lambda item: item.line)


def _read(stream: TextIO) -> _File:
    parsed = _File()
    for line, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            error = f"not valid JSON ({exc.msg} at column {exc.colno})"
            parsed.errors.append(BulkItem(line, "", None, error))
            continue
        if not isinstance(obj, dict):
            parsed.errors.append(BulkItem(line, "", None, "expected a JSON object on this line"))
        elif obj.get("__parentId"):
            parsed.children.append((line, obj))
            if obj.get("id"):
                parsed.child_ids.add(str(obj["id"]))
        elif _typename(obj) == "Product":
            _add_product(parsed, line, obj)
        else:
            error = f"top-level {_typename(obj) or 'object'} is not a Product"
            parsed.errors.append(BulkItem(line, text(obj.get("id")), None, error))
    return parsed


def _add_product(parsed: _File, line: int, obj: dict[str, Any]) -> None:
    gid = text(obj.get("id"))
    node = parsed.products.get(gid)
    if node is None:
        parsed.products[gid] = _Node(line=line, data=dict(obj))
        return
    for key, value in obj.items():
        # An id-only line must not blank out fields another line of the same product carried.
        if value is not None or key not in node.data:
            node.data[key] = value


def _attach_children(parsed: _File) -> None:
    for line, child in parsed.children:
        parent = str(child["__parentId"])
        if parent in parsed.products:
            parsed.products[parent].children.append((line, child))
        elif parent not in parsed.child_ids:  # a variant's own children are not part of the product
            what = " ".join(filter(None, [_typename(child) or "child", text(child.get("id"))]))
            error = f"{what} has parent {parent}, which is not in the file"
            parsed.errors.append(BulkItem(line, parent, None, error))


def _item(gid: str, node: _Node) -> BulkItem:
    try:
        return BulkItem(node.line, gid, _product(gid, node), None)
    except NormalizationError as exc:
        return BulkItem(node.line, gid, None, str(exc))


def _product(gid: str, node: _Node) -> CanonicalProduct:
    data = node.data
    title = text(data.get("title"))
    if not title:
        if set(data) <= _ID_ONLY_KEYS:
            hint = "id-only line; was the query missing fields?"
            raise NormalizationError(f"product {gid} has no title ({hint})")
        raise NormalizationError(f"product {gid} has no title")
    by_type = _children_by_type(node.children)
    return CanonicalProduct(
        shopify_id=parse_id(gid),
        handle=text(data.get("handle")),
        title=title,
        body_html=data.get("descriptionHtml") or data.get("bodyHtml") or "",
        vendor=text(data.get("vendor")),
        product_type=text(data.get("productType")),
        tags=parse_tags(data.get("tags")),
        status=parse_status(data.get("status")),
        published_at=parse_datetime(data.get("publishedAt"), name="publishedAt"),
        created_at=parse_datetime(data.get("createdAt"), name="createdAt"),
        updated_at=parse_datetime(data.get("updatedAt"), name="updatedAt"),
        options=[_option(o) for o in data.get("options") or [] if isinstance(o, dict)],
        images=_images(node.children),
        variants=_variants(by_type.get("ProductVariant", [])),
        metafields=_metafields(by_type.get("Metafield", [])),
        category=_category(data.get("category")),
    )


def _children_by_type(children: list[tuple[int, dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for _, child in children:
        grouped.setdefault(_typename(child), []).append(child)
    return grouped


def _variants(raws: list[dict[str, Any]]) -> list[CanonicalVariant]:
    variants = [_variant(raw, index) for index, raw in enumerate(raws, start=1)]
    # Lines come in any order; the position field is the truth when the query asked for it.
    return sorted(variants, key=lambda variant: variant.position)


def _variant(raw: dict[str, Any], index: int) -> CanonicalVariant:
    label = f"variant {text(raw.get('id')) or index}"
    inventory_item = raw.get("inventoryItem") or {}
    selected = [o for o in raw.get("selectedOptions") or [] if isinstance(o, dict)]
    return CanonicalVariant(
        shopify_id=parse_optional_id(raw.get("id"), name=f"{label} id"),
        title=text(raw.get("title")),
        sku=text(raw.get("sku")),
        barcode=text(raw.get("barcode")),
        price=parse_money(raw.get("price"), name=f"{label} price"),
        compare_at_price=parse_money(raw.get("compareAtPrice"), name=f"{label} compareAtPrice"),
        position=parse_int(raw.get("position"), name=f"{label} position") or index,
        option_values=[text(o.get("value")) for o in selected if text(o.get("value"))],
        inventory_item_id=parse_optional_id(inventory_item.get("id"), name=f"{label} inventoryItem.id"),
        inventory_quantity=parse_int(raw.get("inventoryQuantity"), name=f"{label} inventoryQuantity"),
        inventory_policy=text(raw.get("inventoryPolicy")).lower(),
    )


def _images(children: list[tuple[int, dict[str, Any]]]) -> list[str]:
    urls = []
    for _, child in children:  # in line order, whichever connection a picture came from
        if _typename(child) in _IMAGE_TYPES:
            nested = child.get("image") if isinstance(child.get("image"), dict) else {}
            urls.append(text(child.get("src") or child.get("url") or nested.get("url")))
    # A query for both `images` and `media` returns each picture twice, once per connection.
    return list(dict.fromkeys(url for url in urls if url))


def _metafields(raws: list[dict[str, Any]]) -> dict[str, str]:
    return {
        f"{text(raw.get('namespace'))}.{text(raw.get('key'))}": text(raw.get("value"))
        for raw in raws
        if raw.get("namespace") and raw.get("key") and text(raw.get("value"))
    }


def _option(raw: dict[str, Any]) -> dict:
    values = raw.get("values")
    if values is None:  # newer API versions: optionValues [{name}]
        values = [v.get("name") for v in raw.get("optionValues") or [] if isinstance(v, dict)]
    return {"name": text(raw.get("name")), "values": [text(v) for v in values or []]}


def _category(raw: object) -> str:
    if isinstance(raw, dict):
        return text(raw.get("fullName") or raw.get("name"))
    return text(raw)


def _typename(obj: dict[str, Any]) -> str:
    """`__typename` when the query asked for it, else the type inside the GID."""
    if obj.get("__typename"):
        return str(obj["__typename"])
    match = _GID_TYPE.match(text(obj.get("id")))
    return match.group(1) if match else ""
