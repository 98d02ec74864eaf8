"""Rescoring only on changed inputs, on-change requests from orders, the history, the commands,
external signal imports and the schedules."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule

from catalog.models import Product
from scoring.models import ExternalSignal, TrendScore
from scoring.selectors import product_score_history
from scoring.services import product_rescore, products_rescore
from scoring.tasks import rescore_requested
from search.backends import get_backend
from sync.pipeline import drain
from tests.conftest import post_webhook, webhook_body

pytestmark = pytest.mark.django_db
FEEDER8 = "products_update__feeder8_2024-01__raw_body.json"
WAX_ID = 9079211262258


@pytest.fixture
def product(client):
    post_webhook(client, webhook_body(FEEDER8), webhook_id="p")
    drain()
    return Product.objects.get()


def _order(client, webhook_id: str, quantity: int = 2) -> None:
    body = {
        "id": hash(webhook_id) % 10**9,
        "created_at": timezone.now().isoformat(),
        "line_items": [{"id": hash(webhook_id) % 10**9, "product_id": WAX_ID, "quantity": quantity}],
    }
    post_webhook(client, json.dumps(body).encode(), topic="orders/create", webhook_id=webhook_id)
    drain()


def test_a_product_change_requests_a_rescore_and_the_task_scores_it(product):
    assert product.trend_requested_at is not None  # its scoring inputs are new
    assert rescore_requested()["scored"] == 1
    product.refresh_from_db()
    assert product.trend_requested_at is None and 0.0 <= product.trend_score <= 1.0
    assert get_backend().get(str(product.pk))["trend_score"] == product.trend_score
    assert rescore_requested()["considered"] == 0


def test_an_order_raises_the_score_and_unchanged_inputs_are_skipped(client, product, llm):
    products_rescore(Product.objects.all(), scorer="local")
    product.refresh_from_db()
    before = product.trend_score
    # Replays with nothing new: no score, no LLM call.
    stats = products_rescore(Product.objects.all(), scorer="local")
    assert (stats.scored, stats.unchanged) == (0, 1)
    _order(client, "o1", quantity=5)
    product.refresh_from_db()
    assert product.trend_requested_at is not None
    assert rescore_requested()["scored"] == 1
    product.refresh_from_db()
    assert product.trend_score > before
    history = list(product_score_history(product_id=product.pk))
    assert [h.score for h in history] == [product.trend_score, before]
    assert history[0].signals["sales_velocity"]["value"] > 0 and history[0].signals["sales_velocity"]["at"]


def test_inventory_only_updates_and_no_ops_cost_no_llm_call(client, product, llm, settings):
    settings.SCORING_SCORER = "llm"
    assert rescore_requested()["llm_calls"] == 1
    body = json.loads(webhook_body(FEEDER8))
    post_webhook(client, json.dumps(body).encode(), webhook_id="same")
    for variant in body["variants"]:
        variant["inventory_quantity"] = 1
    newer = json.dumps({**body, "updated_at": "2024-05-07T09:00:00+07:00"}).encode()
    post_webhook(client, newer, webhook_id="inv")
    drain()
    assert rescore_requested() == {**rescore_requested(), "considered": 0, "llm_calls": 0}
    # The daily job finds no changed signal either.
    stats = products_rescore(Product.objects.all())
    assert (stats.considered, stats.unchanged, stats.llm_calls) == (1, 1, 0)
    assert len(llm.requests) == 1


def test_product_rescore_forces_a_new_score_for_the_admin(product):
    products_rescore(Product.objects.all(), scorer="local")
    score = product_rescore(product_id=product.pk, scorer="local")
    assert score is not None and TrendScore.objects.filter(product=product).count() == 2


def test_rescore_command_dry_run_stores_nothing_and_all_stores(product, capsys):
    call_command("rescore", "--all", "--dry-run")
    out = capsys.readouterr().out
    assert "dry run: 1 considered, 1 scored" in out and "Ski Wax" in out
    assert not TrendScore.objects.exists()
    call_command("rescore", "--all", "--scorer", "local")
    assert "1 of 1 products" in capsys.readouterr().out
    assert TrendScore.objects.count() == 1
    call_command("rescore", "--changed")
    assert "0 scored, 1 unchanged" in capsys.readouterr().out
    call_command("rescore", "--product", str(product.pk))
    call_command("rescore", "--since", (timezone.now() - timedelta(days=1)).date().isoformat())
    assert TrendScore.objects.count() == 3
    capsys.readouterr()
    call_command("rescore", "--all", "--scorer", "llm")  # no LLM configured here: says so
    out = capsys.readouterr().out
    assert "1 llm fallbacks, 0 llm calls" in out
    assert "fell back to the local scorer 1x: LLM_BASE_URL or LLM_MODEL not set" in out
    with pytest.raises(CommandError, match="no live product"):
        call_command("rescore", "--product", "999999")
    with pytest.raises(CommandError, match="unknown shop"):
        call_command("rescore", "--all", "--shop", "nope.myshopify.com")


def test_import_signals_command(product, tmp_path, capsys):
    path = tmp_path / "signals.csv"
    path.write_text(
        "handle,kind,value,observed_at,source\n"
        f"{product.handle},social_mentions,120,2026-11-01T00:00:00Z,tiktok\n"
        f"{product.handle},competitor_price,99.5,2026-11-01,rival.example\n"
        "no-such-handle,social_mentions,3,2026-11-01T00:00:00Z,x\n"
        f"{product.handle},mood,1,2026-11-01T00:00:00Z,x\n"
    )
    with pytest.raises(CommandError):
        call_command("import_signals", "--from-file", str(path), "--shop", "feeder8.myshopify.com")
    out, err = capsys.readouterr()
    assert "2 signals imported" in out and "line 4" in err and "line 5" in err
    assert ExternalSignal.objects.count() == 2
    products_rescore(Product.objects.all(), scorer="local")
    signals = TrendScore.objects.get().signals
    assert signals["social_mentions"]["value"] == 120 and "competitor_price" in signals
    assert signals["competitor_price"]["at"] == "2026-11-01T00:00:00+00:00"  # a bare date is UTC midnight
    with pytest.raises(CommandError):  # again: nothing new
        call_command("import_signals", "--from-file", str(path), "--shop", "feeder8.myshopify.com")
    assert "0 signals imported, 2 already known" in capsys.readouterr().out


def test_schedules_exist():
    schedules = {s.name: s for s in Schedule.objects.filter(name__startswith="scoring:")}
    daily = schedules["scoring: rescore changed signals daily"]
    assert (daily.func, daily.schedule_type) == ("scoring.tasks.rescore_changed", "D")
    assert (daily.next_run.hour, daily.next_run.minute) == (2, 0)
    weekly = schedules["scoring: full recompute weekly"]
    assert (weekly.func, weekly.schedule_type) == ("scoring.tasks.rescore_all", "W")
    assert schedules["scoring: rescore requested"].minutes == 5
    assert Schedule.objects.get(name="search: embed pending").func == "search.tasks.embed_pending"


@pytest.mark.parametrize(
    ("typed", "group"),
    [("Wig", "wig"), (" wigs ", "wig"), ("Lace  Front Wigs", "lace front wig"), ("Glass", "glass")],
)
def test_product_types_group_case_and_plural_insensitively(typed, group):
    from scoring.signals import product_type_group

    assert product_type_group(typed) == group


def test_price_position_compares_a_real_type_group_and_says_when(client):
    from scoring.signals import MIN_PRICE_PEERS, product_type_group, products_signals
    from tests.helpers import shared_fixture

    call_command(
        "backfill",
        "--from-file",
        str(shared_fixture("catalog/products_export__hair-extensions-store_2025__84-products.csv")),
        "--shop",
        "hair.myshopify.com",
        verbosity=0,
    )
    products = list(Product.objects.live().prefetch_related("variants"))
    signals = products_signals(products, now=timezone.now())
    sizes: dict[str, int] = {}
    for product in products:
        group = product_type_group(product.product_type)
        sizes[group] = sizes.get(group, 0) + any(v.price is not None for v in product.variants.all())
    for product in products:
        price = signals[product.pk].get("price_position")
        if sizes[product_type_group(product.product_type)] < MIN_PRICE_PEERS:
            assert price is None, product.product_type
        else:
            assert price is not None and price.at is not None and 0.0 <= price.score <= 1.0
    assert any("price_position" in s for s in signals.values())
