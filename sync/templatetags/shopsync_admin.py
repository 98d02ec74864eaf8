"""Template filters of the console: durations and counts people read at a glance."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    """1.2 s, 45 s, 3.5 min, 2.1 h, 3.0 d; an em dash when unknown."""
    if seconds is None:
        return "—"
    seconds = float(seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


@register.filter
def thousands(value: int | None) -> str:
    """12,345 (a thin space would be nicer, but a comma survives every font)."""
    return "—" if value is None else f"{int(value):,}"


@register.filter
def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"
