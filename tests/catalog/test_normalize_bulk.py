"""Bulk-operation JSONL → canonical products: the two real airbyte files and our out-of-order fixture."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from catalog.normalize import BulkItem, iter_bulk_products
from tests.helpers import own_fixture, shared_fixture

WITH_CHILDREN = "bulk/bulk_operation_products_with_children__airbyte-test-store.jsonl"
IMAGES = "bulk/bulk_operation_product_images__airbyte-test-store.jsonl"
OUT_OF_ORDER = "bulk/bulk_operation_products__children-before-parents.jsonl"
ID_ONLY = "has no title (id-only line; was the query missing fields?)"


def read_items(*paths: Path) -> list[BulkItem]:
    text = "".join(path.read_text(encoding="utf-8") for path in paths)
    return list(iter_bulk_products(io.StringIO(text)))


def test_products_with_children_file() -> None:
    items = read_items(shared_fixture(WITH_CHILDREN))
    assert [(item.line, item.key, item.error) for item in items] == [(1, "gid://shopify/Product/123", None)]
    product = items[0].product
    assert product and product.shopify_id == 123
    assert (product.title, product.handle, product.status) == (
        "Gold Silver iPhone 7 Case",
        "gold-silver-iphone-7-case",
        "active",
    )
    assert product.body_html.startswith("Gold and silver glitter")
    assert (product.vendor, product.product_type, product.tags) == (
        "Blanda, O'Kon and Bartell",
        "Music",
        ["developer-tools-generator"],
    )
    assert product.updated_at == datetime(2023, 4, 20, 11, 12, 26, tzinfo=UTC)
    assert product.options == [{"name": "Title", "values": ["Plastic", "indigo"]}]
    # The variant lines carry only their ids; the Image line only its id, so no URL.
    assert [(v.shopify_id, v.position, v.price) for v in product.variants] == [(111, 1, None), (222, 2, None)]
    assert product.images == []


def test_images_file_reports_id_only_products() -> None:
    items = read_items(shared_fixture(IMAGES))
    assert [(item.line, item.key) for item in items] == [
        (1, "gid://shopify/Product/123"),
        (4, "gid://shopify/Product/456"),
        (7, "gid://shopify/Product/9062091161885"),
    ]
    assert all(item.product is None for item in items)
    assert items[0].error == f"product gid://shopify/Product/123 {ID_ONLY}"
    assert all(ID_ONLY in (item.error or "") for item in items)


def test_repeated_product_123_is_merged_across_lines() -> None:
    # Both real files in one stream: product 123 first as an id-only line (with image children),
    # then with all its fields on line 9, then its variants.
    items = read_items(shared_fixture(IMAGES), shared_fixture(WITH_CHILDREN))
    first = items[0]
    assert (first.line, first.key, first.error) == (1, "gid://shopify/Product/123", None)
    product = first.product
    assert product and product.title == "Gold Silver iPhone 7 Case"
    assert [v.shopify_id for v in product.variants] == [111, 222]
    # MediaImage image.url and Image src are the same picture: kept once.
    assert product.images == [
        "https://cdn.shopify.com/s/files/1/0580/3317/6765/products/white-t-shirt.jpg?v=1673029759"
    ]
    assert [item.error is not None for item in items] == [False, True, True]


def test_children_before_parents_bad_json_and_orphans() -> None:
    items = read_items(own_fixture(OUT_OF_ORDER))
    assert [(item.line, item.key, item.product is not None) for item in items] == [
        (4, "gid://shopify/Product/788032119674292922", True),
        (6, "", False),
        (11, "gid://shopify/Product/404", False),
        (13, "gid://shopify/Product/3", True),
    ]
    assert (items[1].error or "").startswith("not valid JSON (")
    assert items[2].error == (
        "ProductVariant gid://shopify/ProductVariant/9100 has parent gid://shopify/Product/404, "
        "which is not in the file"
    )


def test_out_of_order_product_is_assembled() -> None:
    tee = read_items(own_fixture(OUT_OF_ORDER))[0].product
    assert tee and tee.shopify_id == 788032119674292922  # > 2**53: never through a float
    assert (tee.title, tee.handle, tee.status, tee.category) == (
        "Organic Tee",
        "organic-tee",
        "draft",
        "Apparel & Accessories > Clothing > Shirts",
    )
    assert tee.body_html == "<p>Soft.</p>\n<p>Organic.</p>"
    assert tee.published_at is None
    assert tee.images == [
        "https://cdn.example.invalid/tee-front.jpg",
        "https://cdn.example.invalid/tee-back.jpg",
    ]
    assert tee.metafields == {"custom.fabric": "cotton"}  # the variant's InventoryLevel child is ignored


def test_out_of_order_variants_follow_position() -> None:
    tee = read_items(own_fixture(OUT_OF_ORDER))[0].product
    assert tee
    small, large = tee.variants
    assert (small.shopify_id, small.title, small.sku, small.position) == (9001, "S", "TEE-S", 1)
    assert (small.price, small.compare_at_price) == (Decimal("19.99"), Decimal("24.99"))
    assert (small.inventory_item_id, small.inventory_quantity) == (7001, 10)
    assert small.inventory_policy == "continue"
    assert small.option_values == ["S"]
    assert (large.shopify_id, large.price, large.compare_at_price) == (9002, Decimal("21.00"), None)
    assert (large.barcode, large.inventory_item_id, large.inventory_policy) == ("4006381333931", 7002, "deny")


def test_body_html_falls_back_to_legacy_body_html() -> None:
    mug = read_items(own_fixture(OUT_OF_ORDER))[3].product
    assert mug and (mug.body_html, mug.tags, mug.status) == ("Mug", [], "active")
    assert [v.title for v in mug.variants] == ["Default Title"]


def test_bad_field_becomes_an_error_item() -> None:
    lines = (
        '{"id":"gid://shopify/Product/1","title":"A","status":"ACTIVE"}\n'
        '{"id":"gid://shopify/ProductVariant/5","price":"free","__parentId":"gid://shopify/Product/1"}\n'
        '{"id":"gid://shopify/Collection/9","title":"Summer"}\n'
        "[1, 2]\n"
    )
    items = list(iter_bulk_products(io.StringIO(lines)))
    assert [(item.line, item.error) for item in items] == [
        (1, "variant gid://shopify/ProductVariant/5 price is not a number: 'free'"),
        (3, "top-level Collection is not a Product"),
        (4, "expected a JSON object on this line"),
    ]
