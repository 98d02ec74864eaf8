"""The local scorer: deterministic, no network, a weighted mean of the signals' scores.

    score = sum(w_s * score_s) / sum(w_s)   over the signals s the product has

with the weights below. Every signal score is in [0, 1], so the score is too; sales velocity is
always present and its score rises with velocity, so the score is monotonic in sales velocity.
Signals a product lacks (no known stock, alone in its type, nothing imported) drop out of both
sums rather than counting as zero.
"""

from __future__ import annotations

from ..signals import Signal
from . import ScoreResult

VERSION = "local-1"
WEIGHTS: dict[str, float] = {
    "sales_velocity": 0.35,  # what is selling now is what is trending
    "sell_through": 0.15,  # selling fast relative to stock
    "recency": 0.15,  # new arrivals
    "search_demand": 0.15,  # what shoppers look for here
    "price_position": 0.10,  # affordable for its kind
    "social_mentions": 0.05,
    "competitor_price": 0.05,
}


def local_score(signals: dict[str, Signal]) -> ScoreResult:
    used = {name: signal for name, signal in signals.items() if name in WEIGHTS}
    total = sum(WEIGHTS[name] for name in used)
    parts = {name: WEIGHTS[name] * min(max(signal.score, 0.0), 1.0) for name, signal in used.items()}
    score = sum(parts.values()) / total if total else 0.0
    top = sorted(parts, key=lambda name: -parts[name])[:3]
    reasons = "; ".join(
        # What would print as +0.00 explains nothing (a year-old product's recency: +0.0002).
        f"{used[name].detail} (+{parts[name] / total:.2f})"
        for name in top
        if parts[name] / total >= 0.005
    )
    return ScoreResult(
        score=round(min(max(score, 0.0), 1.0), 4),
        explanation=reasons or "no sales, searches or other signals yet",
        scorer="local",
        model=VERSION,
    )
