"""The local scorer: bounded, monotonic in sales velocity, and spread out over a real catalog."""

from __future__ import annotations

import math
import statistics

import pytest
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.models import Product
from scoring.scorers.local import WEIGHTS, local_score
from scoring.services import products_rescore
from scoring.signals import Signal
from search.backends import get_backend
from tests.scoring.helpers import catalog_linked, order_stream

unit = st.floats(min_value=0.0, max_value=1.0)
other_signals = st.dictionaries(st.sampled_from([n for n in WEIGHTS if n != "sales_velocity"]), unit)


def _signals(velocity: float, others: dict[str, float]) -> dict[str, Signal]:
    signals = {name: Signal(score, score, None, name) for name, score in others.items()}
    signals["sales_velocity"] = Signal(velocity, 1.0 - math.exp(-velocity / 0.5), None, "sales")
    return signals


@settings(max_examples=200, deadline=None)
@given(others=other_signals, velocities=st.lists(st.floats(0, 1000), min_size=2, max_size=6))
def test_score_is_bounded_and_monotonic_in_sales_velocity(others, velocities):
    scores = [local_score(_signals(v, others)).score for v in sorted(velocities)]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores)


def test_selling_more_scores_strictly_higher_all_else_equal():
    others = {"recency": 0.2, "search_demand": 0.1}
    assert local_score(_signals(0.0, others)).score < local_score(_signals(1.0, others)).score
    assert local_score(_signals(1.0, others)).score < local_score(_signals(5.0, others)).score


@pytest.mark.django_db
def test_scores_over_the_real_catalog_with_an_order_stream_are_spread_out():
    now = timezone.now()
    products = catalog_linked()
    assert order_stream(products, now=now) > 300
    stats = products_rescore(Product.objects.all(), scorer="local", now=now)
    assert stats.scored == 84 and stats.fallbacks == 0
    scores = list(Product.objects.live().values_list("trend_score", flat=True))
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert len({round(s, 3) for s in scores}) >= 40  # not constant, not a few buckets
    assert statistics.pstdev(scores) > 0.08 and max(scores) - min(scores) > 0.4
    # The best sellers (most weight in the stream) score above the never-sold tail.
    ranked = sorted(Product.objects.live(), key=lambda p: -p.trend_score)
    assert products[0] in ranked[:10]
    # Every score reached the index as the scoring writer's partial update.
    doc = get_backend().get(str(products[0].pk))
    assert doc["trend_score"] == products[0].__class__.objects.get(pk=products[0].pk).trend_score
    assert doc["vv_scoring"] == 1
