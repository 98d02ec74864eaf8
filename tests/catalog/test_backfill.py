"""manage.py backfill on real Shopify exports, and the search over what it imported."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from catalog.models import Product
from search.api import search_products
from tests.helpers import shared_fixture

pytestmark = pytest.mark.django_db
SHOP = "hair-extensions.myshopify.com"
HAIR = "catalog/products_export__hair-extensions-store_2025__84-products.csv"
TEMPLATE = "catalog/product_template__shopify-official-sample_2023-2024.csv"


def backfill(path, shop: str = SHOP) -> tuple[str, str]:
    """Run the command; a run with skipped items ends in CommandError after importing the rest."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("backfill", "--from-file", str(path), "--shop", shop, stdout=out, stderr=err)
    except CommandError as exc:
        assert "could not be imported" in str(exc) and exc.returncode == 2
        err.write(f"exit: {exc}")
    return out.getvalue(), err.getvalue()


def _variant_rows(path, handle: str) -> int:
    import csv

    with open(path, encoding="utf-8-sig", newline="") as stream:
        return sum(1 for row in csv.DictReader(stream) if row["Handle"] == handle and row["Variant Price"])


def test_84_product_export_imports_with_variants_and_statuses(index):
    path = shared_fixture(HAIR)
    out, err = backfill(path)
    assert "84 products read" in out and "applied 84" in out and "0 errors" in out, out
    assert err == ""
    products = Product.objects.filter(shop__domain=SHOP)
    assert products.count() == 84
    assert dict(products.values_list("status").annotate(n=Count("id"))) == {
        "active": 82,
        "draft": 1,
        "archived": 1,
    }
    for product in products:
        assert product.variants.count() == _variant_rows(path, product.handle), product.handle
    assert index.count(shop=SHOP) == 84


def test_reimport_is_a_no_op(index):
    path = shared_fixture(HAIR)
    backfill(path)
    out, _ = backfill(path)
    assert "no-op 84" in out and "0 indexed" in out
    assert Product.objects.count() == 84


def test_shopify_template_imports_3_products(index):
    out, _ = backfill(shared_fixture(TEMPLATE))
    products = Product.objects.order_by("handle")
    assert products.count() == 3
    assert sorted(products.values_list("status", flat=True)) == ["active", "archived", "draft"]
    assert "applied 3" in out


def test_search_finds_by_title_word_and_vendor_but_not_drafts(index):
    backfill(shared_fixture(HAIR))
    titles = [hit.document["title"] for hit in search_products("ophelia", shop=SHOP)]
    assert titles == ["Ophelia Kinky Curly Wig"]
    assert search_products("route", shop=SHOP)[0].document["vendor"] == "Route"
    draft = Product.objects.get(shop__domain=SHOP, status="draft")
    assert draft.title == "Chocolate Brown Blonde Highlights Loose curly Unit Wig"
    assert search_products("chocolate", shop=SHOP) == []
    assert index.get(str(draft.pk))["status"] == "draft"  # indexed, filtered out of results
    archived = Product.objects.get(shop__domain=SHOP, status="archived")
    assert all(hit.id != str(archived.pk) for hit in search_products("tape mongolian", shop=SHOP))


def test_search_is_scoped_to_the_shop(index):
    backfill(shared_fixture(HAIR))
    assert search_products("ophelia", shop="someone-else.myshopify.com") == []


def test_search_command_prints_ranked_results_and_json(index):
    backfill(shared_fixture(HAIR))
    out = io.StringIO()
    call_command("search", "brazilian body wave", "--shop", SHOP, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith(" 1.") and "Brazilian Body Wave" in lines[0]
    out = io.StringIO()
    call_command("search", "ophelia", "--shop", SHOP, "--json", stdout=out)
    rows = json.loads(out.getvalue())
    assert rows[0]["rank"] == 1 and rows[0]["title"] == "Ophelia Kinky Curly Wig"
    # An operator's searches are not shopper demand, unless asked; an empty query never is.
    from scoring.models import SearchQuery

    assert not SearchQuery.objects.exists()
    call_command("search", "ophelia", "--shop", SHOP, "--record-demand", stdout=io.StringIO())
    call_command("search", " ", "--shop", SHOP, "--record-demand", stdout=io.StringIO())
    assert list(SearchQuery.objects.values_list("query", flat=True)) == ["ophelia"]


def test_search_command_rejects_an_unknown_shop():
    with pytest.raises(CommandError, match="unknown shop"):
        call_command("search", "wig", "--shop", "nope.myshopify.com")


def test_json_and_bulk_files_import(tmp_path, index):
    feeder8 = json.loads(
        shared_fixture("webhooks/products_update__feeder8_2024-01__raw_body.json").read_bytes()
    )
    bad = {"id": 5}
    path = tmp_path / "products.json"
    path.write_text(json.dumps({"products": [feeder8, bad]}))
    out, err = backfill(path)
    assert "applied 1" in out and "1 errors" in out
    assert "item 2: product has no 'title'" in err
    out, err = backfill(
        shared_fixture("bulk/bulk_operation_products_with_children__airbyte-test-store.jsonl")
    )
    assert Product.objects.filter(shopify_id=123, title="Gold Silver iPhone 7 Case").exists()


def test_bad_csv_row_reports_its_line_and_the_rest_imports(tmp_path, index):
    path = tmp_path / "export.csv"
    header = "Handle,Title,Body (HTML),Vendor,Type,Tags,Variant Price,Status\n"
    path.write_text(
        header
        + 'good-one,Good One,"<p>multi\nline</p>",Acme,Shirts,,10.00,active\n'
        + "bad-one,Bad One,,Acme,Shirts,,ten dollars,active\n"
        + "good-two,Good Two,,Acme,Shirts,,12.00,active\n"
    )
    out, err = backfill(path)
    assert "line 4" in err and "bad-one" in err and "ten dollars" in err
    assert sorted(Product.objects.values_list("handle", flat=True)) == ["good-one", "good-two"]
    assert "applied 2" in out and "1 errors" in out


def test_missing_file_is_a_clear_error():
    with pytest.raises(CommandError, match="no such file"):
        call_command("backfill", "--from-file", "/nope.csv", "--shop", SHOP)


def test_backfill_cannot_roll_back_a_newer_webhook(client, index):
    from sync.pipeline import drain
    from tests.conftest import post_webhook

    backfill(shared_fixture(HAIR))
    product = Product.objects.get(shop__domain=SHOP, title="Ophelia Kinky Curly Wig")
    payload = {
        "id": 9_000_000_000_001,
        "title": "Ophelia Wig (renamed)",
        "handle": product.handle,
        "updated_at": "2026-01-01T00:00:00Z",
        "variants": [{"id": 1, "price": "1.00"}],
    }
    post_webhook(client, json.dumps(payload).encode(), shop=SHOP)
    drain()
    out, _ = backfill(shared_fixture(HAIR))  # an export without timestamps is older than the webhook
    assert "stale 1" in out
    product.refresh_from_db()
    assert (product.title, product.shopify_id) == ("Ophelia Wig (renamed)", 9_000_000_000_001)


def test_importing_the_export_again_does_not_bring_back_a_deleted_product(client, index, tmp_path):
    from sync.pipeline import drain
    from tests.conftest import post_webhook

    backfill(shared_fixture(HAIR))
    product = Product.objects.get(shop__domain=SHOP, title="Ophelia Kinky Curly Wig")
    update = {"id": 9_000_000_000_002, "handle": product.handle, "title": product.title, "variants": []}
    post_webhook(client, json.dumps({**update, "updated_at": "2026-01-01T00:00:00Z"}).encode(), shop=SHOP)
    post_webhook(
        client,
        json.dumps({"id": 9_000_000_000_002}).encode(),
        shop=SHOP,
        topic="products/delete",
        webhook_id="d",
    )
    drain()
    product.refresh_from_db()
    assert product.deleted_at is not None
    out, _ = backfill(shared_fixture(HAIR))  # the old export still lists it
    assert "stale 1" in out, out
    assert "not brought back: product was deleted at" in out and "import an export with ids" in out
    assert Product.objects.filter(shop__domain=SHOP, handle=product.handle).count() == 1
    assert Product.objects.live().filter(shop__domain=SHOP).count() == 83
    assert index.get(str(product.pk)) is None
    # Had it been re-created in Shopify under that handle, an export with ids brings it in.
    recreated = {
        "id": 9_000_000_000_003,
        "handle": product.handle,
        "title": product.title,
        "updated_at": "2026-02-01T00:00:00Z",
        "variants": [{"id": 3, "price": "1.00"}],
    }
    path = tmp_path / "products.json"
    path.write_text(json.dumps({"products": [recreated]}))
    assert "applied 1" in backfill(path)[0]
    assert Product.objects.live().filter(shop__domain=SHOP, handle=product.handle).count() == 1


def test_file_that_is_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"Handle,Title,Variant Price\ncafe,Caf\xe9 Latte,3.00\n")
    with pytest.raises(CommandError, match=r"is not UTF-8.*CSV UTF-8"):
        call_command("backfill", "--from-file", str(path), "--shop", SHOP)


def test_a_file_that_is_not_an_export_leaves_no_shop_behind(tmp_path):
    from catalog.models import Shop

    path = tmp_path / "notes.csv"
    path.write_text("# my notes\nnothing to import here\n")
    with pytest.raises(CommandError, match="not a Shopify product CSV"):
        call_command("backfill", "--from-file", str(path), "--shop", "typo.myshopify.com")
    assert not Shop.objects.filter(domain="typo.myshopify.com").exists()


def test_the_command_records_its_run_with_the_checkpoint(index, tmp_path):
    from sync.models import SyncRun

    # A bad byte past the reader's first buffer: the file starts well and breaks on the way.
    path = tmp_path / "late-breakage.csv"
    rows = "".join(f"item-{n},Item {n},{n}.00\n" for n in range(1, 1001))
    path.write_bytes(b"Handle,Title,Variant Price\n" + rows.encode() + b"cafe,Caf\xe9,3.00\n")
    with pytest.raises(CommandError, match=r"backfill run #\d+ failed after \d+ items: .*is not UTF-8"):
        call_command("backfill", "--from-file", str(path), "--shop", SHOP, "--batch-size", "200")
    run = SyncRun.objects.get()
    assert (run.kind, run.status) == ("backfill", "failed")
    # What came before the break stays imported, is indexed, and the checkpoint says so.
    assert run.cursor > 800 and run.counts == {"applied": run.cursor, "indexed": run.cursor}
    assert Product.objects.filter(shop__domain=SHOP).count() == run.cursor == index.count(shop=SHOP)

    out, _ = backfill(shared_fixture(HAIR))
    run = SyncRun.objects.latest("pk")
    assert run.status == "done" and run.cursor == 84 and f"(run #{run.pk})" in out


def test_search_command_rejects_a_nonpositive_limit():
    with pytest.raises(CommandError, match="between 1 and 100"):
        call_command("search", "wig", "--limit", "0")
