"""The only code that writes trend scores: compute signals, score, store, write to the index.

A product is rescored only when the hash of its inputs (its own scoring inputs, the rounded
signal scores and the scorer) differs from the one its stored score came from, unless forced:
replaying inventory-only or no-op updates therefore costs no LLM call. The score, its
explanation, scorer, model/prompt version, inputs hash and signals are kept in TrendScore (one
row per score, the product's history); the latest is copied onto Product and written to the index
as a partial update of the `scoring` writer.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Product, Shop
from catalog.normalize.fields import parse_day_or_datetime
from catalog.normalize.types import NormalizationError
from catalog.versioning import version_bump
from config.db import bulk_set
from search.indexer import products_sync_index

from .models import ExternalSignal, SearchQuery, TrendScore
from .scorers import ScoreResult
from .scorers.llm import LLMScorer
from .scorers.local import local_score
from .signals import Signal, products_signals

# Products scored per round: signals are a few queries per batch, and index writes go together.
BATCH_SIZE = 100
SCORERS = ("local", "llm")


@dataclass
class RescoreStats:
    considered: int = 0
    scored: int = 0
    unchanged: int = 0  # inputs hash unchanged: nothing to do
    fallbacks: int = 0
    fallback_reasons: Counter = field(default_factory=Counter)  # why the LLM was not used
    llm_calls: int = 0
    scores: list[tuple[int, float]] = field(default_factory=list)  # dry runs report these

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k not in ("scores", "fallback_reasons")}


Progress = Callable[[int, int], None] | None


def products_rescore(
    products: QuerySet[Product],
    *,
    scorer: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Progress = None,
    llm: LLMScorer | None = None,
) -> RescoreStats:
    """Rescore these products (live ones only), in keyset batches; see the module docstring."""
    scorer = scorer or settings.SCORING_SCORER
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; choose one of {SCORERS}")
    llm = llm or (LLMScorer() if scorer == "llm" else None)
    now = now or timezone.now()
    stats = RescoreStats()
    products = products.filter(deleted_at__isnull=True)
    total, last = products.count(), 0
    while True:
        batch = list(
            products.filter(pk__gt=last)
            .select_related("shop")
            .prefetch_related("variants")
            .order_by("pk")[:BATCH_SIZE]
        )
        if not batch:
            break
        last = batch[-1].pk
        _rescore_batch(batch, scorer, llm, force, dry_run, now, stats)
        if progress:
            progress(stats.considered, total)
    if llm is not None:
        stats.llm_calls = llm.calls
    return stats


def product_rescore(*, product_id: int, scorer: str | None = None) -> TrendScore | None:
    """Rescore one product now, even when its inputs are unchanged (an admin action)."""
    products_rescore(Product.objects.filter(pk=product_id), scorer=scorer, force=True)
    return TrendScore.objects.filter(product_id=product_id).first()


def products_rescore_requested(*, limit: int | None = None) -> RescoreStats:
    """Score the products a change asked to rescore (Product.trend_requested_at), then clear the
    request of those whose request is not newer than the scoring."""
    started = timezone.now()
    ids = list(
        Product.objects.filter(trend_requested_at__isnull=False)
        .order_by("trend_requested_at")
        .values_list("pk", flat=True)[:limit]
    )
    stats = products_rescore(Product.objects.filter(pk__in=ids))
    Product.objects.filter(pk__in=ids, trend_requested_at__lte=started).update(trend_requested_at=None)
    return stats


def rescore_request(*, product_ids: Iterable[int]) -> int:
    """Ask for a rescore of these products (inside the caller's transaction); the worker takes
    them from the database, so the wake-up message may be lost without losing the request."""
    from search.queue import RESCORE_TASK, wakeup_on_commit

    ids = list(product_ids)
    if not ids:
        return 0
    count = Product.objects.filter(pk__in=ids).update(trend_requested_at=timezone.now())
    wakeup_on_commit(RESCORE_TASK)
    return count


def derived_work_request(embed_changed: bool, score_changed_ids: list[int]) -> None:
    """After catalog changes: wake the embedding worker if a text changed, and ask for a rescore
    of the products whose scoring inputs changed."""
    from search.queue import EMBED_TASK, wakeup_on_commit

    if embed_changed:
        wakeup_on_commit(EMBED_TASK)
    rescore_request(product_ids=score_changed_ids)


def _rescore_batch(
    batch: list[Product],
    scorer: str,
    llm: LLMScorer | None,
    force: bool,
    dry_run: bool,
    now: datetime,
    stats: RescoreStats,
) -> None:
    signals = products_signals(batch, now=now)
    results: dict[int, tuple[ScoreResult, str]] = {}
    for product in batch:
        stats.considered += 1
        inputs = inputs_hash(product, signals[product.pk], scorer)
        if not force and inputs == product.trend_inputs_hash:
            stats.unchanged += 1
            continue
        if scorer == "llm" and llm is not None:
            result = llm.score(_product_summary(product), signals[product.pk])
        else:
            result = local_score(signals[product.pk])
        if result.fallback_reason:
            stats.fallbacks += 1
            stats.fallback_reasons[result.fallback_reason] += 1
        stats.scores.append((product.pk, result.score))
        if result.fallback_reason:
            # Stored as what it is, a local score: the next run that asks for the LLM sees inputs it
            # has not scored yet and tries again, instead of keeping the fallback until a signal moves.
            inputs = inputs_hash(product, signals[product.pk], result.scorer)
        results[product.pk] = (result, inputs)
    stats.scored += len(results)
    if results and not dry_run:
        _store(results, signals, scorer, now)
        products_sync_index(list(results))


def _store(
    results: dict[int, tuple[ScoreResult, str]], signals: dict[int, dict[str, Signal]], scorer: str, now
) -> None:
    with transaction.atomic():
        locked = Product.objects.select_for_update(of=("self",)).filter(pk__in=list(results))
        rows, history = [], []
        for product in locked.only("pk", "version_vector").order_by("pk"):
            result, inputs = results[product.pk]
            version_bump(product, "scoring")
            explanation = result.explanation
            if result.fallback_reason:
                explanation += f" [local fallback: {result.fallback_reason}]"
            rows.append((product.pk, result.score, explanation, inputs, now, product.version_vector))
            history.append(
                TrendScore(
                    product_id=product.pk,
                    score=result.score,
                    explanation=explanation,
                    scorer=result.scorer,
                    requested_scorer=scorer,
                    fallback=bool(result.fallback_reason),
                    fallback_reason=result.fallback_reason[:255],
                    model=result.model,
                    prompt_version=result.prompt_version,
                    inputs_hash=inputs,
                    signals={name: s.as_dict() for name, s in signals[product.pk].items()},
                )
            )
        fields = [
            "trend_score",
            "trend_explanation",
            "trend_inputs_hash",
            "trend_scored_at",
            "version_vector",
        ]
        bulk_set(Product, fields, rows)
        TrendScore.objects.bulk_create(history)


def inputs_hash(product: Product, signals: dict[str, Signal], scorer: str) -> str:
    """What a score depends on: the product's own inputs, each signal's score to 3 decimals
    (finer moves change no ranking), and the scorer; the LLM also reads what `_product_summary`
    gives it (title, vendor, tags), so for it those count too."""
    rounded = {name: round(signal.score, 3) for name, signal in signals.items()}
    payload = {"product": product.score_inputs_hash, "signals": rounded, "scorer": scorer}
    if scorer == "llm":
        payload["summary"] = _product_summary(product)
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _product_summary(product: Product) -> dict:
    return {
        "title": product.title,
        "product_type": product.product_type,
        "vendor": product.vendor,
        "tags": list(product.tags),
    }


# --- search query log -------------------------------------------------------------------------


def search_query_record(*, shop: str | None, query: str, mode: str, doc_ids: list[str]) -> None:
    """Log one search and the products it showed: the search-demand signal's raw material. An
    empty query asks for nothing and is not demand."""
    if not query.strip():
        return
    shop_id = Shop.objects.filter(domain=shop).values_list("pk", flat=True).first() if shop else None
    SearchQuery.objects.create(shop_id=shop_id, query=query[:512], mode=mode, results=doc_ids[:20])


# --- external signals -------------------------------------------------------------------------


@dataclass
class ImportReport:
    imported: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


def external_signals_import(*, path: Path, shop: Shop) -> ImportReport:
    """Import a CSV with columns handle, kind, value, observed_at[, source]: one row a signal.

    A row for an unknown handle or with a bad value is reported with its line number and the rest
    imports; re-importing the same file changes nothing (unique per product, kind and time). The
    products whose signals changed are asked to rescore.
    """
    report = ImportReport()
    products = dict(Product.objects.live().filter(shop=shop).values_list("handle", "pk"))
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                signal = _external_row(row, products)
            except (NormalizationError, ValueError, KeyError) as exc:
                report.errors.append(f"line {line}: {exc}")
                continue
            rows.append(signal)
    touched = {r.product_id for r in rows}
    with transaction.atomic():
        before = ExternalSignal.objects.filter(product_id__in=touched).count()
        ExternalSignal.objects.bulk_create(rows, ignore_conflicts=True)
        report.imported = ExternalSignal.objects.filter(product_id__in=touched).count() - before
        report.skipped = len(rows) - report.imported  # already imported
        if report.imported:
            rescore_request(product_ids=touched)
    return report


def _external_row(row: dict, products: dict[str, int]) -> ExternalSignal:
    handle = (row.get("handle") or "").strip()
    if handle not in products:
        raise ValueError(f"no live product with handle {handle!r}")
    kind = (row.get("kind") or "").strip()
    if kind not in ExternalSignal.Kind.values:
        raise ValueError(f"kind must be one of {', '.join(ExternalSignal.Kind.values)}, got {kind!r}")
    value = float(row["value"])
    if not math.isfinite(value):
        raise ValueError(f"value must be a finite number, got {row['value']!r}")
    observed_at = parse_day_or_datetime(row.get("observed_at"), name="observed_at")
    if observed_at is None:
        raise ValueError("observed_at is required")
    return ExternalSignal(
        product_id=products[handle],
        kind=kind,
        value=value,
        observed_at=observed_at,
        source=(row.get("source") or "").strip()[:255],
    )
