"""A real browser (Debian's headless Chromium, driven by Playwright) logs in, reads the dashboard
loaded with the demo catalog and generated traffic, replays a dead letter from the list, and
opens a product page. Screenshots go to artifacts/ (git-ignored) for people to look at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.utils import timezone

from catalog.models import Product
from scoring.services import products_rescore
from search.embeddings import products_embed_pending
from sync.models import DeadLetter, WebhookEvent
from tests.console_data import DEMO_SHOP, generate_activity, load_catalog
from tests.helpers import ROOT
from tests.scoring.helpers import order_stream

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium; .ci/run does)",
    ),
]


@pytest.fixture
def browser_page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r requirements/dev.txt")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # synchronous and safe, so Django's async guard is told so.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
        page.set_default_timeout(15000)
        yield page
        browser.close()
    _close_server_connections()


def _close_server_connections() -> None:
    """The live server answers keep-alive requests on threads that can outlive the browser with
    their database connection open, which blocks dropping the test database at the end of the
    session: end those sessions of the test database (ours alone) once the browser is gone."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


def test_console_in_a_real_browser(live_server, client, django_user_model, browser_page):
    run = load_catalog(DEMO_SHOP, real=True)
    shop = run.shop
    generate_activity(client, shop, products=40, stock_updates=10)
    products = list(Product.objects.filter(shop=shop, shopify_id__isnull=False).order_by("pk"))
    order_stream(products, now=timezone.now(), orders=120)
    assert products_embed_pending().products == Product.objects.filter(shop=shop).count()
    assert products_rescore(Product.objects.filter(shop=shop)).scored > 0
    django_user_model.objects.create_superuser("ops", "ops@example.com", "ops-password-1")
    letter = DeadLetter.objects.get(resolved_at__isnull=True)
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser_page

    page.goto(f"{live_server.url}/admin/login/?next=/admin/dashboard/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "ops-password-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/dashboard/")
    backlog = page.locator("#ss-backlog .ss-big").inner_text()
    assert backlog == "0"
    assert page.locator("#ss-dlq .ss-big").inner_text() == "1"
    assert page.locator("#ss-throughput svg rect.bar").count() > 10
    applied = WebhookEvent.objects.filter(outcome="applied").count()
    assert f"applied {applied:,}" in page.locator("#ss-outcomes").inner_text()
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/sync/deadletter/?resolved=open")
    page.check(f"input[name=_selected_action][value='{letter.pk}']")
    page.select_option("select[name=action]", "replay")
    page.click("button[name=index]")
    assert "replayed 1 of 1" in page.locator("ul.messagelist").inner_text().lower()
    page.screenshot(path=str(ARTIFACTS / "dead_letters.png"), full_page=True)
    assert WebhookEvent.objects.get(dead_letter=letter).status == "pending"

    product = Product.objects.filter(shop=shop, shopify_id__isnull=False).order_by("pk").first()
    page.goto(f"{live_server.url}/admin/catalog/product/{product.pk}/change/")
    assert "in sync" in page.locator("#ss-why").inner_text()
    assert page.locator("#ss-timeline li").count() >= 3
    page.screenshot(path=str(ARTIFACTS / "product.png"), full_page=True)

    # Sorted by trend score, highest first (column 7: the action checkbox is column 0).
    page.goto(f"{live_server.url}/admin/catalog/product/?shop__id__exact={shop.pk}&o=-7")
    page.screenshot(path=str(ARTIFACTS / "products.png"), full_page=False)
    top = Product.objects.filter(shop=shop).order_by("-trend_score").first()
    assert f"{top.trend_score:.2f}" in page.locator("#result_list tbody tr").first.inner_text()
    assert os.path.getsize(ARTIFACTS / "dashboard.png") > 10_000
