"""REST/webhook product payloads (API 2020 to 2026-04) → canonical products, plus format detection."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from catalog.normalize import NormalizationError, detect_format, product_from_rest
from catalog.normalize.fields import parse_id
from tests.helpers import shared_fixture

BIG_ID = 788032119674292922  # from products_delete: > 2**53, so a float would change it


def load(relative: str) -> dict:
    return json.loads(shared_fixture(f"webhooks/{relative}").read_text(encoding="utf-8"))


def product_payload_files() -> list[Path]:
    folder = shared_fixture("webhooks")
    # products/delete carries only the id, and *__headers.json are the delivery's headers.
    return [
        path
        for path in sorted(folder.glob("products_*.json"))
        if not path.name.startswith("products_delete") and not path.name.endswith("__headers.json")
    ]


def test_every_product_payload_normalizes() -> None:
    paths = product_payload_files()
    assert len(paths) >= 5
    for path in paths:
        product = product_from_rest(json.loads(path.read_text(encoding="utf-8")))
        assert product.shopify_id and product.title, path.name
        assert product.status in ("active", "draft", "archived"), path.name


def test_2020_payload_without_status_is_active() -> None:
    payload = load("products_create-or-update__swordfox-wiw_2020-05__raw_body.json")
    assert "status" not in payload
    product = product_from_rest(payload)
    assert product.status == "active"
    assert product.published_at is None
    assert product.variants[0].title == "Default Title"


def test_feeder8_tags_string_becomes_list() -> None:
    product = product_from_rest(load("products_update__feeder8_2024-01__raw_body.json"))
    assert product.tags == ["Accessory", "Sport", "Winter"]
    assert product.body_html == ""  # null there too


def test_pipedream_null_body_html_is_empty_string() -> None:
    payload = load("products_update__pipedream-teststore_2024-06__body.json")
    assert payload["body_html"] is None
    assert product_from_rest(payload).body_html == ""


def test_2026_04_variant_without_grams() -> None:
    payload = load("products_update__aura-historia-devstore_2026-04__body.json")
    raw_variant = payload["variants"][0]
    assert "grams" not in raw_variant and "inventory_management" not in raw_variant
    variant = product_from_rest(payload).variants[0]
    assert (variant.price, variant.sku, variant.inventory_item_id) == (Decimal("420.00"), "", 54261482422555)


def test_ids_above_2_pow_53_survive() -> None:
    assert parse_id("788032119674292922") == BIG_ID
    assert parse_id("gid://shopify/Product/788032119674292922") == BIG_ID
    delete_body = load("products_delete__shopify-documented-example__raw_body.json")
    assert delete_body["id"] == BIG_ID
    product = product_from_rest({"id": delete_body["id"], "title": "Big"})
    assert product.shopify_id == BIG_ID


def test_delete_body_is_not_a_product() -> None:
    with pytest.raises(NormalizationError, match="title"):
        product_from_rest({"id": BIG_ID})


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("export.CSV", "{not csv but the extension wins", "csv"),
        ("products.json", "Handle,Title\n", "json"),
        ("bulk.ndjson", "", "jsonl"),
        ("download", '[{"id": 1}]', "json"),
        ("download", '{\n  "id": 1\n}\n', "json"),
        ("download", '{"id": 1}\n{"id": 2}\n', "jsonl"),
        ("download", "\ufeffHandle,Title\na,A\n", "csv"),
        ("download", "   \n", "csv"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    assert detect_format(path) == expected
