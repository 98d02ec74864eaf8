"""The LLM scorer against a local stand-in endpoint: every behaviour ends in a stored score (the
LLM's or the local fallback) within the timeout, and a failing endpoint trips the breaker."""

from __future__ import annotations

import json
import time

import pytest

from catalog.models import Product
from scoring.models import TrendScore
from scoring.scorers.llm import PROMPT_VERSION, parse_answer
from scoring.selectors import llm_fallback_stats
from scoring.services import products_rescore
from search.backends import get_backend
from sync.pipeline import drain
from tests.conftest import post_webhook, webhook_body

pytestmark = pytest.mark.django_db
FEEDER8 = "products_update__feeder8_2024-01__raw_body.json"


@pytest.fixture
def product(client):
    post_webhook(client, webhook_body(FEEDER8), webhook_id="p")
    drain()
    return Product.objects.get()


def _rescore(product) -> tuple[TrendScore, float]:
    started = time.monotonic()
    stats = products_rescore(Product.objects.filter(pk=product.pk), scorer="llm", force=True)
    elapsed = time.monotonic() - started
    assert stats.scored == 1
    return TrendScore.objects.filter(product=product).first(), elapsed


def test_success_stores_the_llm_score_and_writes_the_index(llm, product):
    score, elapsed = _rescore(product)
    assert elapsed < 1.0
    assert (score.score, score.scorer, score.fallback) == (0.73, "llm", False)
    assert (score.model, score.prompt_version) == ("standin-1", PROMPT_VERSION)
    assert score.explanation == "Selling steadily and searched often."
    request = llm.requests[0]
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer test-key"
    assert request["body"]["model"] == "standin-1"
    assert "Ski Wax" in request["body"]["messages"][1]["content"]
    assert "sales_velocity" in request["body"]["messages"][1]["content"]
    assert get_backend().get(str(product.pk))["trend_score"] == 0.73
    product.refresh_from_db()
    assert (product.trend_score, product.trend_explanation) == (0.73, score.explanation)


@pytest.mark.parametrize("behaviour", ["malformed", "out-of-range"])
def test_garbage_falls_back_to_local_at_once(llm, product, behaviour):
    llm.default = behaviour
    score, elapsed = _rescore(product)
    assert (score.scorer, score.requested_scorer, score.fallback) == ("local", "llm", True)
    assert len(llm.requests) == 1  # garbage is not retried
    assert "local fallback" in score.explanation and 0.0 <= score.score <= 1.0
    assert elapsed < 1.0


def test_a_fallback_is_replaced_by_the_next_run_once_the_llm_answers(llm, product):
    llm.default = "malformed"
    _rescore(product)
    llm.default = "success"
    # Not forced, signals unchanged: a run that asks for the LLM still tries the fallback again...
    stats = products_rescore(Product.objects.filter(pk=product.pk), scorer="llm")
    assert (stats.scored, stats.unchanged) == (1, 0)
    latest = TrendScore.objects.filter(product=product).order_by("-pk").first()
    assert (latest.scorer, latest.fallback, latest.score) == ("llm", False, 0.73)
    # ...and an LLM score whose inputs are unchanged is kept.
    stats = products_rescore(Product.objects.filter(pk=product.pk), scorer="llm")
    assert (stats.scored, stats.unchanged) == (0, 1)


def test_429_waits_retry_after_then_succeeds(llm, product):
    llm.script.extend(["rate-limited"])
    score, elapsed = _rescore(product)
    assert (score.scorer, score.score) == ("llm", 0.73)
    assert len(llm.requests) == 2 and 1.0 <= elapsed < 3.0  # Retry-After: 1


def test_500_is_retried_with_backoff_then_falls_back(llm, product):
    llm.default = "server-error"
    score, elapsed = _rescore(product)
    assert (score.scorer, score.fallback) == ("local", True)
    assert "HTTP 500" in score.fallback_reason
    assert len(llm.requests) == 3  # one try and LLM_MAX_RETRIES
    assert elapsed < 3.0


def test_a_hang_falls_back_within_the_timeout(llm, product, settings):
    settings.LLM_TIMEOUT_SECONDS = 1.5
    llm.default = "hang"
    score, elapsed = _rescore(product)
    assert (score.scorer, score.fallback) == ("local", True)
    assert "1.5s" in score.fallback_reason
    assert 1.4 <= elapsed < 2.5


def test_breaker_opens_after_repeated_failures_and_stops_calling(llm, client, settings):
    settings.LLM_BREAKER_FAILURES = 2
    settings.LLM_MAX_RETRIES = 0
    llm.default = "server-error"
    original = json.loads(webhook_body(FEEDER8))
    for i in range(5):
        body = {**original, "id": 100 + i, "handle": f"wax-{i}", "title": f"Wax {i}"}
        post_webhook(client, json.dumps(body).encode(), webhook_id=f"w{i}")
    drain()
    stats = products_rescore(Product.objects.all(), scorer="llm", force=True)
    assert (stats.scored, stats.fallbacks, stats.llm_calls) == (5, 5, 2)
    reasons = list(TrendScore.objects.order_by("product_id").values_list("fallback_reason", flat=True))
    assert [r.startswith("circuit open") for r in reasons] == [False, False, True, True, True]
    assert llm_fallback_stats(TrendScore.objects.order_by("pk").first().created_at) == {
        "scored": 5,
        "fallbacks": 5,
    }


def test_without_an_endpoint_llm_falls_back_without_a_request(product, settings):
    settings.LLM_BASE_URL = ""
    score, _ = _rescore(product)
    assert score.fallback and "LLM_BASE_URL" in score.fallback_reason


@pytest.mark.parametrize(
    "content",
    [
        '{"score": 0.5}',
        '{"score": 0.5, "explanation": "x", "extra": 1}',
        '{"score": true, "explanation": "x"}',
        '{"score": -0.1, "explanation": "x"}',
        '{"score": 0.5, "explanation": "  "}',
        "[0.5]",
    ],
)
def test_the_answer_is_validated_strictly(content):
    from scoring.scorers.llm import LLMError

    raw = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
    with pytest.raises(LLMError):
        parse_answer(raw)
