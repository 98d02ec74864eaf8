"""manage.py reconcile: drift between stored products and the index is found and repaired."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Product
from tests.helpers import shared_fixture

pytestmark = pytest.mark.django_db
SHOP = "hair-extensions.myshopify.com"


def _reconcile(*flags: str) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("reconcile", "--shop", SHOP, *flags, stdout=out)
    except CommandError as exc:
        return out.getvalue() + str(exc), exc.returncode
    return out.getvalue(), 0


def test_reconcile_finds_and_repairs_drift(index):
    call_command(
        "backfill",
        "--from-file",
        str(shared_fixture("catalog/products_export__hair-extensions-store_2025__84-products.csv")),
        "--shop",
        SHOP,
        stdout=io.StringIO(),
    )
    out, code = _reconcile()
    assert code == 0 and "84 live products, 84 documents; missing 0, extra 0, differing 0" in out

    products = list(Product.objects.order_by("pk")[:3])
    index.delete(str(products[0].pk))  # lost write
    doc = index.get(str(products[1].pk))
    index.put({**doc, "title": "Corrupted title"})  # drifted content
    index.put({**doc, "id": "999999", "title": "Ghost"})  # a document without a product
    out, code = _reconcile()
    assert code == 3
    assert "missing 1, extra 1, differing 1" in out and "--repair" in out
    assert f"missing: {products[0].pk}" in out and "extra: 999999" in out

    out, code = _reconcile("--repair")
    assert code == 0 and "repaired 3" in out
    assert index.get(str(products[1].pk))["title"] == products[1].title
    assert index.get("999999") is None
    out, code = _reconcile()
    assert "missing 0, extra 0, differing 0" in out


def test_reconcile_unknown_shop_is_a_clear_error():
    with pytest.raises(CommandError, match="unknown shop"):
        call_command("reconcile", "--shop", "nope.myshopify.com")
