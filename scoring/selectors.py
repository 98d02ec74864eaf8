"""Reads of the scoring app.

Placeholder until issue 4 lands: issue 4 replaces this module with the real selectors (the
merger takes issue 4's version). The admin dashboard's "LLM fallback rate" panel reads
`llm_fallback_stats` with exactly this signature and result shape.
"""

from __future__ import annotations

from datetime import datetime


def llm_fallback_stats(since: datetime) -> dict[str, int]:
    """Products scored since `since`, and how many of them fell back from the LLM to `local`."""
    return {"scored": 0, "fallbacks": 0}
