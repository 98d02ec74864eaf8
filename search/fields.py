"""The one definition of the index document's fields, shared by every backend.

The embedded backend takes its text columns and their weights from here; the Vespa application
package (`search/vespa_app/schemas/product.sd`) is generated from here and a test checks the
committed file against it, so the two backends cannot drift. Each field belongs to exactly one
writer (DESIGN.md §4.4): a write of that writer assigns its fields and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .backends.base import WRITERS, version_field

EMBEDDING_DIMENSIONS = 384  # all-MiniLM-L6-v2


class Kind(StrEnum):
    STRING = "string"
    LONG = "long"
    DOUBLE = "double"
    STRINGS = "array<string>"
    VECTOR = "tensor<float>(x[384])"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    writer: str
    # BM25 weight of a text field (0: not searched as text). The title is what shoppers call a
    # product, so a match there counts most; tags, vendor and type are short merchant-curated
    # labels, strong but broader; the description is long prose where a word is often incidental.
    text_weight: float = 0.0
    # Filtered, sorted or ranked on at query time (an attribute in Vespa).
    attribute: bool = False


FIELDS: tuple[Field, ...] = (
    # Merchant content, from Shopify (the only group whose write may create a document).
    Field("shop", Kind.STRING, "shopify", attribute=True),
    Field("shopify_id", Kind.LONG, "shopify", attribute=True),
    Field("handle", Kind.STRING, "shopify", attribute=True),
    Field("title", Kind.STRING, "shopify", text_weight=10.0),
    Field("tags", Kind.STRINGS, "shopify", text_weight=5.0, attribute=True),
    Field("vendor", Kind.STRING, "shopify", text_weight=4.0, attribute=True),
    Field("product_type", Kind.STRING, "shopify", text_weight=4.0, attribute=True),
    Field("description", Kind.STRING, "shopify", text_weight=1.0),
    Field("status", Kind.STRING, "shopify", attribute=True),
    Field("price_min", Kind.DOUBLE, "shopify", attribute=True),
    Field("price_max", Kind.DOUBLE, "shopify", attribute=True),
    # Stock, from inventory_levels/update (never creates a document).
    Field("inventory_total", Kind.LONG, "inventory", attribute=True),
    # The semantic embedding of the product's text, and the model that made it.
    Field("embedding", Kind.VECTOR, "embedding", attribute=True),
    Field("embedding_model", Kind.STRING, "embedding", attribute=True),
    # The trend score in [0, 1] (its explanation stays in the database).
    Field("trend_score", Kind.DOUBLE, "scoring", attribute=True),
    # The admin writer (manual overrides) owns no index field yet.
)

FIELDS_BY_NAME = {f.name: f for f in FIELDS}


def writer_fields(writer: str) -> tuple[str, ...]:
    """The names of the fields `writer` owns, in definition order."""
    if writer not in WRITERS:
        raise ValueError(f"unknown writer {writer!r}")
    return tuple(f.name for f in FIELDS if f.writer == writer)


# Text fields in weight order (strongest first): the embedded backend's FTS columns.
TEXT_WEIGHTS: dict[str, float] = {
    f.name: f.text_weight for f in sorted(FIELDS, key=lambda f: -f.text_weight) if f.text_weight
}
VERSION_FIELDS: tuple[str, ...] = tuple(version_field(w) for w in WRITERS)
