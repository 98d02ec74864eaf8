"""Scorers turn a product and its signals into a trend score in [0, 1] with an explanation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScoreResult:
    score: float
    explanation: str
    scorer: str  # "local" or "llm": what produced the score
    model: str = ""
    prompt_version: str = ""
    fallback_reason: str = ""  # set when llm was asked and local answered
