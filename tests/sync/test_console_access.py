"""The per-shop boundary: a merchant (staff, not superuser) sees and acts on their shops only."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from catalog.models import Product, Shop
from search.backends import get_backend
from sync.models import DeadLetter, ShopMembership, WebhookEvent
from sync.pipeline import drain
from tests.conftest import post_webhook
from tests.console_data import ID_BASE, load_catalog, post, product_payload
from tests.sync.test_console import act

pytestmark = pytest.mark.django_db
MINE, THEIRS = "merchant-mine.myshopify.com", "merchant-theirs.myshopify.com"


@pytest.fixture
def shops(client):
    for domain in (MINE, THEIRS):
        load_catalog(domain, real=False)
        shop = Shop.objects.get(domain=domain)
        product = Product.objects.filter(shop=shop).first()
        post(client, shop, "products/update", product_payload(product, ID_BASE, timezone.now()))
        post_webhook(client, json.dumps({"id": 1}).encode(), shop=domain, webhook_id=f"bad-{domain}")
    drain()
    post(client, Shop.objects.get(domain=THEIRS), "inventory_levels/update", {"inventory_item_id": 1})
    return Shop.objects.get(domain=MINE), Shop.objects.get(domain=THEIRS)


@pytest.fixture
def merchant(client, django_user_model, shops):
    user = django_user_model.objects.create_user("merchant", password="pw-merchant", is_staff=True)
    ShopMembership.objects.create(user=user, shop=shops[0])
    client.force_login(user)
    return client


def _listed(client, url: str, **params) -> list:
    response = client.get(url, params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_lists_show_only_the_merchants_shop(merchant, shops):
    mine, theirs = shops
    assert {p.shop_id for p in _listed(merchant, "/admin/catalog/product/")} == {mine.pk}
    assert {e.shop_id for e in _listed(merchant, "/admin/sync/webhookevent/")} == {mine.pk}
    assert {d.shop_id for d in _listed(merchant, "/admin/sync/deadletter/")} == {mine.pk}
    assert {r.shop_id for r in _listed(merchant, "/admin/sync/syncrun/")} == {mine.pk}
    assert [s.pk for s in _listed(merchant, "/admin/catalog/shop/")] == [mine.pk]
    # Filters offer only their shop, and asking for another shop's rows shows none of them.
    html = merchant.get("/admin/catalog/product/").content.decode()
    assert MINE in html and THEIRS not in html
    rows = _listed(merchant, "/admin/catalog/product/", shop__id__exact=theirs.pk)
    assert {p.shop_id for p in rows} <= {mine.pk}


def test_object_pages_of_other_shops_are_not_found(merchant, shops):
    _, theirs = shops
    product = Product.objects.filter(shop=theirs).first()
    event = WebhookEvent.objects.filter(shop=theirs).first()
    for url in (
        f"/admin/catalog/product/{product.pk}/change/",
        f"/admin/sync/webhookevent/{event.pk}/change/",
        f"/admin/catalog/shop/{theirs.pk}/change/",
    ):
        response = merchant.get(url)
        assert response.status_code == 302 and response["Location"] == "/admin/", url
    assert merchant.get(f"/admin/catalog/shop/{theirs.pk}/backfill/").status_code == 404


def test_actions_never_touch_other_shops(merchant, shops):
    mine, theirs = shops
    their_letter = DeadLetter.objects.get(shop=theirs)
    my_letter = DeadLetter.objects.get(shop=mine)
    assert act(merchant, "sync/deadletter", "replay", [their_letter.pk, my_letter.pk]) == ["replayed 1 of 1"]
    assert WebhookEvent.objects.get(dead_letter=their_letter).status == "dead"
    assert act(merchant, "sync/deadletter", "discard", [their_letter.pk]) == ["discarded 0 of 0"]
    their_letter.refresh_from_db()
    assert their_letter.resolved_at is None

    their_product = Product.objects.filter(shop=theirs).first()
    get_backend().update(str(their_product.pk), {"title": "drifted"})
    act(merchant, "catalog/product", "resync", [their_product.pk])
    assert get_backend().get(str(their_product.pk))["title"] == "drifted"
    their_event = WebhookEvent.objects.filter(shop=theirs, status="done").first()
    act(merchant, "sync/webhookevent", "reprocess", [their_event.pk])
    their_event.refresh_from_db()
    assert their_event.status == "done"
    act(merchant, "catalog/shop", "start_reconcile", [theirs.pk])
    assert not theirs.sync_runs.filter(kind="reconcile").exists()


def test_dashboard_counts_only_the_merchants_shop(merchant, admin_client, shops):
    mine, _ = shops
    mine_stats = merchant.get("/admin/dashboard/").context["stats"]
    all_stats = admin_client.get("/admin/dashboard/").context["stats"]
    assert (mine_stats.backlog["pending"], all_stats.backlog["pending"]) == (0, 1)
    assert (mine_stats.dlq["open"], all_stats.dlq["open"]) == (1, 2)
    assert mine_stats.index["products"] == Product.objects.filter(shop=mine).count()
    assert all_stats.index["products"] == Product.objects.count()
    assert mine_stats.llm == {"visible": False} and all_stats.llm["visible"]
    assert {r.shop_id for r in mine_stats.runs} == {mine.pk}


def test_merchants_see_that_the_index_fails_but_not_its_raw_errors(merchant, admin_client, index_faults):
    from sync.selectors import MERCHANT_INDEX_ERROR

    index_faults.fail("retryable", "503 from vespa-content-3.internal: doc id:shopsync:product::77")
    assert merchant.get("/admin/dashboard/").context["stats"].index["error"] == MERCHANT_INDEX_ERROR
    assert "vespa-content-3.internal" in admin_client.get("/admin/dashboard/").context["stats"].index["error"]


def test_staff_without_shops_see_nothing_and_others_must_log_in(client, django_user_model, shops):
    staff = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(staff)
    stats = client.get("/admin/dashboard/").context["stats"]
    assert (stats.backlog["pending"], stats.dlq["open"], stats.index["products"]) == (0, 0, 0)
    assert client.get("/admin/catalog/product/").status_code == 403
    client.logout()
    shopper = django_user_model.objects.create_user("shopper", password="pw")
    client.force_login(shopper)
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
