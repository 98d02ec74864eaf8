"""CSV exports → canonical products: the real 84-product export, Shopify's template, and our edge cases.

Expected counts and line numbers were read off the files by hand (`grep -n '^<handle>,'`, row counts),
not produced by the parser under test.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from catalog.normalize import CsvItem, NormalizationError, csv_export, iter_csv_products
from tests.helpers import own_fixture, shared_fixture

HAIR_EXPORT = "catalog/products_export__hair-extensions-store_2025__84-products.csv"
TEMPLATE = "catalog/product_template__shopify-official-sample_2023-2024.csv"
BAD_PRICE = "catalog/products_export__bad-price-mid-file.csv"
RENAMED = "catalog/products_export__renamed-dialect_2025.csv"
NO_HANDLE = "catalog/products_export__no-handle-column.csv"


def read_items(path: Path) -> list[CsvItem]:
    # Plain utf-8, not utf-8-sig: the parser must cope with a BOM left in the first header itself.
    with path.open(encoding="utf-8", newline="") as stream:
        return list(iter_csv_products(stream))


def by_handle(items: list[CsvItem]) -> dict[str, CsvItem]:
    return {item.handle: item for item in items}


@pytest.fixture(scope="module")
def hair_items() -> list[CsvItem]:
    return read_items(shared_fixture(HAIR_EXPORT))


@pytest.fixture(scope="module")
def hair(hair_items: list[CsvItem]) -> dict[str, CsvItem]:
    return by_handle(hair_items)


# --- the real 84-product export (2023–2025 dialect, metafield columns, multi-line HTML) ---


def test_hair_export_yields_84_products_without_errors(hair_items: list[CsvItem]) -> None:
    assert [item.error for item in hair_items if item.error] == []
    assert len(hair_items) == 84
    assert len({item.handle for item in hair_items}) == 84


def test_hair_export_statuses(hair_items: list[CsvItem]) -> None:
    statuses = [item.product.status for item in hair_items if item.product]
    assert (statuses.count("active"), statuses.count("draft"), statuses.count("archived")) == (82, 1, 1)
    assert hair_items[8].product and hair_items[8].product.status == "draft"


def test_hair_export_variant_counts(hair: dict[str, CsvItem]) -> None:
    # 565 data rows of which 120 carry only Handle + Image Src/Position/Alt Text.
    assert sum(len(item.product.variants) for item in hair.values() if item.product) == 445
    routeins = hair["routeins"].product
    assert routeins and len(routeins.variants) == 76
    assert [v.title for v in routeins.variants[:3]] == ["0.98", "1.15", "1.35"]
    assert routeins.variants[-1].price == Decimal("140.38")


def test_hair_export_multi_option_products(hair: dict[str, CsvItem]) -> None:
    bundles = hair["human-hair-braid-in-bundles"].product
    assert bundles and len(bundles.variants) == 12
    assert bundles.options == [
        {"name": "Length", "values": ["14 Inches", "18 Inches", "20 Inches", "22 Inches"]},
        {"name": "Color", "values": ["brown", "black", "beige"]},
    ]
    assert bundles.variants[1].title == "14 Inches / black"
    clips = hair["virgin-mongolian-kinky-curly-clips-in"].product
    assert clips and len(clips.variants) == 24
    assert [o["name"] for o in clips.options] == ["Color", "Texture", "Length"]
    assert clips.variants[6].option_values == ["Natural Brown", "Tight Kinky 3C/4A", "16 Inches"]
    assert clips.variants[6].title == "Natural Brown / Tight Kinky 3C/4A / 16 Inches"
    assert [v.position for v in clips.variants] == list(range(1, 25))


def test_hair_export_image_only_rows_add_images_not_variants(hair: dict[str, CsvItem]) -> None:
    sophie = hair["dummy-1"].product  # 1 variant row + 6 image-only rows
    assert sophie and len(sophie.variants) == 1
    assert len(sophie.images) == 7
    assert sophie.images[1].endswith("IMG_4317.jpg?v=1730925445")
    swiss = hair["kinky-straight-5x5-swiss-hd-lace-closure-1"].product  # 4 variants + 3 image-only rows
    assert swiss and [v.title for v in swiss.variants] == ['14"', '16"', '18"', '20"']
    assert len(swiss.images) == 7


def test_hair_export_line_numbers_count_multiline_cells(hair: dict[str, CsvItem]) -> None:
    lines = {handle: hair[handle].line for handle in ("routeins", "human-hair-braid-in-bundles", "dummy-1")}
    assert lines == {"routeins": 2, "human-hair-braid-in-bundles": 126, "dummy-1": 160}
    assert hair["virgin-mongolian-kinky-curly-clips-in"].line == 1314
    assert hair["fall-kinky-curly-unit-3b-3c-16-18"].line == 1438


def test_hair_export_metafields(hair: dict[str, CsvItem]) -> None:
    sophie = hair["dummy-1"].product
    assert sophie
    assert sophie.metafields["custom.density"] == "250% Handmade Wig | Large Head Size (23-23.5)"
    assert sophie.metafields["custom.lace_color"] == "5x5 HD Lace with bleached knots"
    assert sophie.metafields["reviews.rating_count"] == "6"
    # Namespaces with dashes, and a value that spans two lines inside its cell.
    assert sophie.metafields["shopify--discovery--product_search_boost.queries"] == "kinky\nboho"
    routeins = hair["routeins"].product
    assert routeins and routeins.metafields == {}  # empty cells are skipped


def test_hair_export_keeps_non_ascii(hair: dict[str, CsvItem]) -> None:
    nina = hair["dummy-7"].product
    assert nina and nina.title == "Nina Kinky Curly Honey Blonde HD Lace 5×5 Closure wig 22″"
    gia = hair["gia-unit-hd-lace-closure-5-5-24"].product
    assert gia and gia.title == "Gia Unit HD Lace Closure 5×5 24 Wig"


def test_hair_export_multiline_body_intact(hair: dict[str, CsvItem]) -> None:
    sophie = hair["dummy-1"].product
    assert sophie
    # Lines 160–170 of the file: one cell, ten line breaks, CSV-doubled quotes undone.
    assert sophie.body_html.startswith('<div class="col-lg-6">\n<div class="form-group">\n<p data-end="317"')
    assert sophie.body_html.endswith("</ul>\n</div>\n</div>")
    assert sophie.body_html.count("\n") == 10
    assert "returns &amp; exchanges" in sophie.body_html


def test_hair_export_product_fields(hair: dict[str, CsvItem]) -> None:
    sophie = hair["dummy-1"].product
    assert sophie and sophie.shopify_id is None and sophie.updated_at is None
    assert sophie.vendor == "Mercyshairextensions"
    assert sophie.product_type == "wigs"
    assert sophie.category == "Apparel & Accessories > Clothing Accessories > Hair Accessories > Wigs"
    assert sophie.tags[:3] == ["#AFROKINKY", "#hairextension", "#mercyshairextensions"]
    variant = sophie.variants[0]
    assert (variant.price, variant.compare_at_price) == (Decimal("950.00"), Decimal("1020.00"))
    assert variant.inventory_policy == "deny"
    assert variant.inventory_quantity is None  # this dialect has no Variant Inventory Qty column


# --- Shopify's official template ---


def test_template_yields_three_products_with_each_status() -> None:
    items = read_items(shared_fixture(TEMPLATE))
    assert [item.error for item in items] == [None, None, None]
    products = [item.product for item in items if item.product]
    assert [(p.handle, p.status) for p in products] == [
        ("example-shirt", "active"),
        ("example-pants", "draft"),
        ("example-hat", "archived"),
    ]
    shirt, _, hat = products
    assert len(shirt.variants) == 12
    assert shirt.variants[0].barcode == "365275101829"
    assert hat.variants[0].title == "Default Title"
    assert hat.options == [{"name": "Title", "values": ["Default Title"]}]


# --- our fixtures: a bad row mid-file, the 2025 renamed dialect, a file without Handle ---


def test_bad_price_reports_its_product_and_line_and_the_rest_import() -> None:
    items = read_items(own_fixture(BAD_PRICE))
    assert [(item.handle, item.line) for item in items] == [
        ("linen-shirt", 2),
        ("wool-scarf", 10),
        ("silk-tie", 13),
        ("cotton-socks", 15),
    ]
    bad = items[1]
    assert bad.product is None
    assert bad.error == "line 12: column 'Variant Price' is not a number: 'thirty'"
    assert all(item.product and not item.error for item in items if item is not bad)


def test_bad_price_file_neighbours_are_complete() -> None:
    linen, _, tie, socks = by_handle(read_items(own_fixture(BAD_PRICE))).values()
    assert linen.product and len(linen.product.variants) == 2  # the image-only row adds no variant
    assert linen.product.images == [
        "https://cdn.example.invalid/linen-front.jpg",
        "https://cdn.example.invalid/linen-back.jpg",
    ]
    assert linen.product.body_html.count("\n") == 4
    assert [v.inventory_quantity for v in linen.product.variants] == [4, 0]
    assert tie.product and tie.product.title == "Silk Tie 8×150 cm"
    assert tie.product.variants[0].barcode == "3.65275E+11"  # Excel's damage is kept, not "fixed"
    assert tie.product.status == "archived"
    assert socks.product and socks.product.status == "draft"
    assert socks.product.options == [
        {"name": "Size", "values": ["39-42", "43-46"]},
        {"name": "Color", "values": ["White", "Black"]},
    ]


def test_renamed_2025_dialect() -> None:
    items = read_items(own_fixture(RENAMED))
    assert [(item.handle, item.line, item.error) for item in items] == [
        ("merino-beanie", 2, None),
        ("gift-card", 6, None),
    ]
    beanie, gift = (item.product for item in items)
    assert beanie and gift
    assert beanie.title == "Merino Beanie"
    # Records end in CRLF, the break inside the cell is a bare LF: both survive as written.
    assert beanie.body_html == "<p>Soft merino.</p>\n<p>One size ″fits″ most.</p>"
    assert beanie.category == "Apparel & Accessories > Clothing Accessories > Hats"
    assert beanie.tags == ["winter", "wool"]
    variants = [
        (v.sku, v.barcode, v.price, v.inventory_quantity, v.inventory_policy) for v in beanie.variants
    ]
    assert variants == [
        ("BEA-NVY", "7350000000011", Decimal("25.00"), 15, "deny"),
        ("BEA-GRY", "", Decimal("25.00"), 3, "continue"),
    ]
    assert beanie.variants[0].compare_at_price == Decimal("29.00")
    assert beanie.options == [{"name": "Color", "values": ["Navy", "Grey"]}]
    # Ordered by Image position, not by row.
    images = [url.rsplit("/", 1)[1] for url in beanie.images]
    assert images == ["beanie-navy.jpg", "beanie-side.jpg", "beanie-grey.jpg"]
    assert beanie.metafields == {"shopify.color-pattern": "navy; grey", "custom.material": "Merino wool"}
    assert gift.status == "draft" and [v.title for v in gift.variants] == ["50 kr", "100 kr"]


def test_missing_handle_column_raises_before_iterating() -> None:
    with (
        own_fixture(NO_HANDLE).open(encoding="utf-8", newline="") as stream,
        pytest.raises(NormalizationError, match=r"no 'Handle' or 'URL handle' column; .*'Body \(HTML\)'"),
    ):
        iter_csv_products(stream)  # no next(): the header is checked on the call itself


def test_empty_file_raises() -> None:
    with pytest.raises(NormalizationError, match="empty"):
        iter_csv_products(io.StringIO(""))


# --- smaller cases, inline ---

HEADER = "Handle,Title,Body (HTML),Published,Option1 Name,Option1 Value,Variant SKU,Variant Price,Image Src\n"


def parse(text: str) -> list[CsvItem]:
    return list(iter_csv_products(io.StringIO(text, newline="")))


def test_published_decides_status_when_there_is_no_status_column() -> None:
    items = parse(HEADER + "a,A,,TRUE,Title,Default Title,A1,1,\nb,B,,false,,,B1,2,\nc,C,,,,,C1,3,\n")
    assert [item.product.status for item in items if item.product] == ["active", "draft", "active"]
    assert items[1].product and items[1].product.variants[0].title == "Default Title"


def test_missing_title_and_blank_lines() -> None:
    items = parse(HEADER + "a,,,TRUE,,,A1,1,\n\nb,B,,TRUE,,,B1,2,\n")
    assert items[0].error == "line 2: column 'Title' is empty on the product's first row"
    assert (items[1].handle, items[1].line, items[1].error) == ("b", 4, None)


def test_non_consecutive_handle_is_reported() -> None:
    items = parse(HEADER + "a,A,,TRUE,,,A1,1,\nb,B,,TRUE,,,B1,2,\na,,,,,,A2,3,\n")
    assert [item.error is None for item in items] == [True, True, False]
    assert items[2].line == 4
    assert "'a' appears again" in (items[2].error or "") and "first at line 2" in (items[2].error or "")


def test_body_over_csv_default_cell_limit() -> None:
    body = "<p>" + "x" * 200_000 + "</p>"  # csv refuses cells over 128 KiB unless told otherwise
    items = parse(HEADER + f'a,A,"{body}",TRUE,,,A1,1,\n')
    assert items[0].product and items[0].product.body_html == body


def test_unreadable_record_raises_with_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = csv.field_size_limit()
    monkeypatch.setattr(csv_export, "_MAX_CELL", 40)
    csv.field_size_limit(40)
    try:
        rows = "a,A,,TRUE,,,A1,1,\nb,B," + "y" * 50 + ",TRUE,,,B1,2,\n"
        items = iter_csv_products(io.StringIO(HEADER + rows))
        # Raised while "a" is still being grouped: whether its rows ended is unknowable.
        with pytest.raises(NormalizationError, match=r"^line 3: the CSV cannot be read from here on"):
            next(items)
    finally:
        csv.field_size_limit(previous)
