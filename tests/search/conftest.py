"""The real embedding model, loaded at most once per test session (~6 s, ~550 MB), and each
distinct text encoded at most once per session (tests roll the database back, not the model)."""

from __future__ import annotations

import numpy as np
import pytest

from search.embeddings import SentenceTransformerEncoder


class SessionCachedEncoder:
    def __init__(self, encoder: SentenceTransformerEncoder) -> None:
        self.encoder = encoder
        self.name, self.dimensions = encoder.name, encoder.dimensions
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: list[str], *, batch_size: int) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            self.cache.update(zip(missing, self.encoder.encode(missing, batch_size=batch_size), strict=True))
        return np.stack([self.cache[t] for t in texts])


@pytest.fixture(scope="session")
def real_encoder_session() -> SessionCachedEncoder:
    return SessionCachedEncoder(SentenceTransformerEncoder(dtype="bf16"))


@pytest.fixture
def real_encoder(real_encoder_session, settings):
    """Make the real model the process's encoder for one test."""
    from search.embeddings import set_encoder

    settings.EMBEDDING_ENCODER = "search.embeddings.SentenceTransformerEncoder"
    set_encoder(real_encoder_session)
    yield real_encoder_session
    set_encoder(None)
