"""django-q2 tasks of the search app: thin wrappers that call one service. Safe to run twice."""

from __future__ import annotations


def embed_pending() -> str:
    """Embed every product whose text changed (or whose vector came from another model)."""
    from .embeddings import products_embed_pending  # the model loads here, in the worker only

    stats = products_embed_pending()
    return (
        f"embedded {stats.products} ({stats.encoded} encoded, {stats.reused} reused) in {stats.seconds:.1f}s"
    )
