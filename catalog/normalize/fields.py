"""Field-level parsers shared by every source: ids, timestamps, money, tags, HTML."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from .types import PRODUCT_STATUSES, NormalizationError

_GID = re.compile(r"^gid://shopify/\w+/(\d+)")
_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"</?(p|div|br|li|ul|ol|h[1-6]|tr|table)\b[^>]*>", re.IGNORECASE)
_SPACE = re.compile(r"[ \t\r\f\v]+")
_NEWLINES = re.compile(r"\n\s*\n+")
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1>", re.IGNORECASE | re.DOTALL)


def parse_id(value: object, *, name: str = "id") -> int:
    """A Shopify id as a Python int (ids exceed 2^53, so never via float). Accepts GIDs."""
    if isinstance(value, bool):
        raise NormalizationError(f"{name} must be an integer id, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        match = _GID.match(text)
        if match:
            return int(match.group(1))
        if text.isascii() and text.isdigit():  # "²".isdigit() is true, and int() refuses it
            return int(text)
    raise NormalizationError(f"{name} must be an integer id or a Shopify GID, got {value!r}")


def parse_optional_id(value: object, *, name: str = "id") -> int | None:
    if value in (None, ""):
        return None
    return parse_id(value, name=name)


def parse_datetime(value: object, *, name: str = "timestamp") -> datetime | None:
    """ISO-8601 with offset or Z (Shopify sends nanoseconds in headers; microseconds are kept)."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise NormalizationError(f"{name} must be an ISO-8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise NormalizationError(f"{name} is not an ISO-8601 timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        raise NormalizationError(f"{name} has no UTC offset: {value!r}")
    return parsed


def parse_day_or_datetime(value: object, *, name: str = "timestamp") -> datetime | None:
    """A bare date (YYYY-MM-DD) as midnight UTC, or an ISO-8601 time with offset (operators type
    dates; exports carry times)."""
    if isinstance(value, str) and len(value.strip()) == 10:
        try:
            day = datetime.strptime(value.strip(), "%Y-%m-%d")
        except ValueError as exc:
            raise NormalizationError(f"{name} is not a date (YYYY-MM-DD): {value!r}") from exc
        return day.replace(tzinfo=UTC)
    return parse_datetime(value, name=name)


def parse_money(value: object, *, name: str = "price") -> Decimal | None:
    """Shopify sends prices as strings ("19.99"); GraphQL may send {"amount": "..."}."""
    if value in (None, ""):
        return None
    if isinstance(value, dict):
        value = value.get("amount")
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise NormalizationError(f"{name} is not a number: {value!r}") from exc


def parse_int(value: object, *, name: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError) as exc:
        raise NormalizationError(f"{name} is not an integer: {value!r}") from exc


def parse_tags(value: object) -> list[str]:
    """REST and CSV send one comma-separated string; GraphQL sends a list. Order kept, no dupes."""
    if value in (None, ""):
        return []
    items = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    seen: dict[str, None] = {}
    for item in items:
        tag = item.strip()
        if tag:
            seen.setdefault(tag, None)
    return list(seen)


def parse_status(value: object, *, default: str = "active") -> str:
    """active/draft/archived. Payloads from before 2021 have no status: their products are live."""
    if value in (None, ""):
        return default
    status = str(value).strip().lower()
    if status not in PRODUCT_STATUSES:
        raise NormalizationError(f"status must be one of {PRODUCT_STATUSES}, got {value!r}")
    return status


def html_to_text(value: str | None) -> str:
    """Readable text from body_html for search: tags dropped, entities decoded, spaces collapsed."""
    if not value:
        return ""
    text = _SCRIPT.sub(" ", value)
    text = _BLOCK.sub("\n", text)
    text = html.unescape(_TAG.sub(" ", text))
    lines = (_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return _NEWLINES.sub("\n", "\n".join(line for line in lines if line)).strip()


def text(value: object) -> str:
    return "" if value is None else str(value).strip()
