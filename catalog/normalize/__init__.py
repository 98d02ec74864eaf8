"""Every Shopify product source (webhook/REST JSON, bulk JSONL, CSV export) → `CanonicalProduct`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from .bulk_jsonl import BulkItem, iter_bulk_products
from .csv_export import CsvItem, iter_csv_products
from .rest import product_from_rest
from .types import CanonicalProduct, CanonicalVariant, NormalizationError

__all__ = [
    "BulkItem",
    "CanonicalProduct",
    "CanonicalVariant",
    "CsvItem",
    "NormalizationError",
    "SourceFormat",
    "detect_format",
    "iter_bulk_products",
    "iter_csv_products",
    "product_from_rest",
]

SourceFormat = Literal["csv", "json", "jsonl"]

_EXTENSIONS: dict[str, SourceFormat] = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def detect_format(path: str | os.PathLike[str]) -> SourceFormat:
    """Which reader a file needs: by extension, else by content (bulk results arrive without one).

    Without a known extension the file is read whole once, so prefer naming files properly.
    """
    path = Path(path)
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension:
        return by_extension
    content = path.read_text(encoding="utf-8-sig", errors="replace").strip()
    if content[:1] not in ("[", "{"):
        return "csv"
    try:
        json.loads(content)
    except ValueError:
        pass
    else:
        return "json"
    first_line = content.split("\n", 1)[0]
    return "jsonl" if content[:1] == "{" and _is_json_object(first_line) else "csv"


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
