"""Services behind the console's actions (admin and commands): resync products, reprocess
events, and backfill or reconcile runs of a shop. Each returns what it did, so the caller can
say it ("resynced 3 of 3").
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from catalog.backfill import BATCH_SIZE as BACKFILL_BATCH_SIZE
from catalog.backfill import BatchResult, backfill_batches
from catalog.models import Product, Shop
from catalog.normalize import NormalizationError
from scoring.services import derived_work_request, products_rescore, rescore_request
from search.backends import get_backend
from search.backends.base import WRITERS, IndexError_, version_field
from search.documents import product_doc_id, product_document
from search.indexer import products_reindex

from .models import SyncRun, WebhookEvent
from .queue import drain_wakeup_on_commit
from .reconcile import reconcile_shop

logger = logging.getLogger("shopsync.console")
# A run keeps this many error lines (the rest are counted): enough to see the pattern.
RUN_MAX_ERRORS = 50
# Told after each batch of a backfill run executed in the caller's process (the command's progress).
RunProgress = Callable[[SyncRun, BatchResult], None] | None


@dataclass(slots=True)
class ActionResult:
    """What an action did to the selected items: `verb` `done` of `total`, and why not the rest."""

    verb: str
    done: int = 0
    total: int = 0
    problems: list[str] = field(default_factory=list)
    done_ids: list[int] = field(default_factory=list)  # the items it was done to

    def __str__(self) -> str:
        text = f"{self.verb} {self.done} of {self.total}"
        if self.problems:
            text += f" ({'; '.join(self.problems[:3])}{'; …' if len(self.problems) > 3 else ''})"
        return text


def products_resync(*, product_ids: list[int]) -> ActionResult:
    """Re-derive each product's whole index document from the stored truth and write it (a
    deleted product's document is removed); the index then holds the stored version.

    Rows are locked while their documents are written, like the drain's writes, so a concurrent
    webhook cannot be overtaken by this older view of the product.
    """
    result = ActionResult("resynced", total=len(set(product_ids)))
    backend = get_backend()
    now = timezone.now()
    for pk in sorted(set(product_ids)):
        with transaction.atomic():
            product = (
                Product.objects.select_for_update(of=("self",))
                .select_related("shop")
                .prefetch_related("variants")
                .filter(pk=pk)
                .first()
            )
            if product is None:
                result.problems.append(f"product {pk} no longer exists")
                continue
            try:
                if product.deleted_at is not None:
                    backend.delete(product_doc_id(product))
                else:
                    backend.put({**product_document(product), **_versions(product)})
            except IndexError_ as exc:
                result.problems.append(f"{product.title or pk}: {exc}")
                continue
            Product.objects.filter(pk=pk).update(index_vector=F("version_vector"), indexed_at=now)
            result.done += 1
            result.done_ids.append(pk)
    return result


def _versions(product: Product) -> dict[str, int]:
    vector = product.version_vector
    return {version_field(w): vector[w] for w in WRITERS if w in vector}


def products_rescore_now(*, product_ids: list[int]) -> ActionResult:
    """Recompute the trend score of each live product with the configured scorer, even when its
    inputs are unchanged, and write it to the index. The local scorer answers at once; with the
    LLM scorer (seconds per product) the products are queued for the scoring worker instead, with
    their inputs hash cleared so the worker cannot skip them as unchanged."""
    ids = sorted(set(product_ids))
    live = Product.objects.filter(pk__in=ids, deleted_at__isnull=True)
    scorer = settings.SCORING_SCORER
    if scorer == "llm":
        result = ActionResult("queued for rescoring by the LLM", total=len(ids))
        with transaction.atomic():
            live.update(trend_inputs_hash="")
            result.done = rescore_request(product_ids=live.values_list("pk", flat=True))
    else:
        result = ActionResult("rescored", total=len(ids))
        stats = products_rescore(live, scorer=scorer, force=True)
        result.done = stats.scored
    if gone := len(ids) - result.done:
        result.problems.append(f"{gone} deleted in Shopify")
    return result


def webhook_events_reprocess(*, event_ids: list[int]) -> ActionResult:
    """Queue finished, failed or dead events to be processed again (harmless on applied ones:
    they come out stale or no-op). Events already waiting, and rejected ones (malformed: they
    can never apply), are left alone."""
    result = ActionResult("queued for reprocessing", total=len(set(event_ids)))
    now = timezone.now()
    waiting = (WebhookEvent.Status.PENDING, WebhookEvent.Status.PROCESSING, WebhookEvent.Status.REJECTED)
    with transaction.atomic():
        events = WebhookEvent.objects.filter(pk__in=event_ids)
        skipped = dict(
            events.filter(status__in=waiting).values_list("status").annotate(n=Count("id")).order_by()
        )
        result.done = events.exclude(status__in=waiting).update(
            status=WebhookEvent.Status.PENDING,
            outcome="",
            attempts=0,
            next_attempt_at=now,
            lease_expires_at=None,
        )
    result.problems = [f"{n} {status}" for status, n in sorted(skipped.items())]
    if result.done:
        drain_wakeup_on_commit()
    return result


def upload_store(*, upload) -> Path:
    """Keep an uploaded import file under SHOPSYNC_VAR_DIR/uploads/ for a backfill run to read."""
    folder = Path(settings.VAR_DIR) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{uuid.uuid4().hex}-{Path(upload.name).name}"
    with target.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return target


def sync_run_start(
    *,
    shop: Shop,
    kind: str,
    user=None,
    source: str = "",
    repair: bool = True,
    run_now: bool = False,
    batch_size: int = BACKFILL_BATCH_SIZE,
    progress: RunProgress = None,
) -> SyncRun:
    """Record a backfill or reconcile run and have a worker execute it after commit, or execute it
    now (`manage.py backfill`: with `progress` called after each batch)."""
    if kind == SyncRun.Kind.BACKFILL and not Path(source).is_file():
        raise ValueError(f"no such import file: {source}")
    run = SyncRun.objects.create(
        shop=shop, kind=kind, source=source, repair=repair, started_by=user if user and user.pk else None
    )
    if run_now:
        return sync_run_execute(run_id=run.pk, batch_size=batch_size, progress=progress)

    def enqueue() -> None:
        from django_q.tasks import async_task

        async_task("sync.tasks.sync_run_execute", run.pk, task_name=f"sync run {run.pk}", save=False)

    transaction.on_commit(enqueue)
    return run


def sync_run_execute(
    *, run_id: int, batch_size: int = BACKFILL_BATCH_SIZE, progress: RunProgress = None
) -> SyncRun:
    """Execute a queued run (a worker task); a run already started elsewhere is left alone."""
    claimed = SyncRun.objects.filter(pk=run_id, status=SyncRun.Status.QUEUED).update(
        status=SyncRun.Status.RUNNING, started_at=timezone.now()
    )
    run = SyncRun.objects.select_related("shop").get(pk=run_id)
    if not claimed:
        return run
    try:
        if run.kind == SyncRun.Kind.BACKFILL:
            _backfill(run, batch_size, progress)
        else:
            _reconcile(run)
        run.status = SyncRun.Status.DONE
    except (NormalizationError, IndexError_, OSError) as exc:
        run.status = SyncRun.Status.FAILED
        run.summary = f"failed after {run.cursor} items: {exc}"[:500]
        logger.warning("sync run %s failed: %s", run.pk, exc)
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "summary", "finished_at", "counts", "errors", "cursor", "expected"])
    return run


def _backfill(run: SyncRun, batch_size: int, progress: RunProgress) -> None:
    indexed = errors = 0
    for batch in backfill_batches(shop=run.shop, path=Path(run.source), batch_size=batch_size):
        indexed += products_reindex(batch.changed_product_ids)
        derived_work_request(batch.embed_changed, batch.score_changed_ids)
        for outcome, n in batch.outcomes.items():
            run.counts[outcome] = run.counts.get(outcome, 0) + n
        errors += len(batch.errors)
        run.errors = (run.errors + batch.errors)[:RUN_MAX_ERRORS]
        run.cursor += batch.items  # the checkpoint moves only after the batch's writes
        run.counts["indexed"] = indexed
        run.save(update_fields=["counts", "errors", "cursor"])
        if progress:
            progress(run, batch)
    applied = ", ".join(f"{k} {v}" for k, v in sorted(run.counts.items()) if k != "indexed")
    run.summary = f"read {run.cursor}: {applied or 'nothing applied'}; indexed {indexed}; {errors} errors"


def _reconcile(run: SyncRun) -> None:
    report = reconcile_shop(shop=run.shop, repair=run.repair)
    run.expected, run.cursor = report.products, report.documents
    run.counts = {
        "missing": len(report.missing),
        "extra": len(report.extra),
        "differing": len(report.differing),
        "repaired": report.repaired,
    }
    run.errors = [f"missing {d}" for d in report.missing][:RUN_MAX_ERRORS]
    run.summary = (
        f"{report.products} products, {report.documents} documents: drift {report.drift}, "
        f"repaired {report.repaired}"
    )
