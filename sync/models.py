"""WebhookEvent: every verified delivery exactly as received, and what became of it.

The row is the durable record and the source of truth for what is left to do; task-queue
messages are only wake-ups.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from catalog.models import Shop


class WebhookEvent(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSING = "processing"
        DONE = "done"
        SKIPPED = "skipped"
        FAILED = "failed"  # kept for events of older releases; failures now end DEAD
        DEAD = "dead"  # gave up: a DeadLetter holds the error and replays it
        REJECTED = "rejected"  # verified but malformed: kept for inspection, never processed

    class Outcome(models.TextChoices):
        APPLIED = "applied"
        STALE = "stale"
        NOOP = "no-op"
        SKIPPED = "skipped"
        REJECTED = "rejected"
        FAILED = "failed"

    shop = models.ForeignKey(
        Shop, on_delete=models.CASCADE, null=True, blank=True, related_name="webhook_events"
    )
    shop_domain = models.CharField(max_length=255, blank=True)
    topic = models.CharField(max_length=128, blank=True)
    # NULL (not "") when the header is missing, so such deliveries never collide in the constraint.
    webhook_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    event_id = models.CharField(max_length=255, blank=True)
    triggered_at = models.DateTimeField(null=True, blank=True)
    api_version = models.CharField(max_length=32, blank=True)
    headers = models.JSONField(default=dict)
    body = models.BinaryField(help_text="the raw request body, byte for byte")
    received_at = models.DateTimeField()

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    stored_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="set when an attempt stored its change but could not write the index: the retry "
        "that writes it reports the event applied",
    )
    note = models.CharField(max_length=500, blank=True, help_text="why the outcome is what it is")
    error = models.TextField(blank=True)
    duplicate_deliveries = models.PositiveIntegerField(
        default=0, help_text="repeats of this X-Shopify-Webhook-Id answered 200 and not processed"
    )
    subject_id = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="the Shopify id the delivery is about, read at ingest: the product (products/*), "
        "the inventory item (inventory_levels/update) or the order (orders/*)",
    )

    class Meta:
        constraints = [
            # Idempotency lives in the database: two copies arriving at the same instant on two
            # workers cannot both insert.
            models.UniqueConstraint(fields=["shop", "webhook_id"], name="webhook_event_unique_delivery"),
        ]
        indexes = [
            # The drain's claims: due events of one shop in arrival order, and expired leases.
            models.Index(fields=["shop", "id"], condition=Q(status="pending"), name="webhook_event_pending"),
            models.Index(
                fields=["lease_expires_at"], condition=Q(status="processing"), name="webhook_event_leased"
            ),
            models.Index(fields=["received_at"], name="webhook_event_received"),
            # A product's deliveries, for its timeline and sync state (built concurrently: 0006).
            models.Index(
                fields=["shop", "subject_id"],
                condition=Q(subject_id__isnull=False),
                name="webhook_event_subject",
            ),
            # The dashboard's figures, read from the index alone (index-only scans). Each is partial
            # on a state the ingest INSERT never writes (processed, rejected by the view aside,
            # repeated), so a delivery's INSERT adds no index entry for them: bench/dashboard.py.
            models.Index(
                fields=["received_at"],
                include=["processed_at", "triggered_at", "status", "outcome", "shop"],
                condition=Q(processed_at__isnull=False),
                name="webhook_event_finished",
            ),
            models.Index(
                fields=["received_at"],
                include=["shop"],
                condition=Q(status="rejected"),
                name="webhook_event_rejected",
            ),
            models.Index(
                fields=["received_at"],
                include=["duplicate_deliveries", "shop"],
                condition=Q(duplicate_deliveries__gt=0),
                name="webhook_event_repeated",
            ),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.topic} {self.shop_domain} {self.webhook_id or self.pk}"


class DeadLetter(models.Model):
    """A unit of work that failed for good: kept with its error until replayed or discarded.

    Nothing is dropped silently: a permanent error (a malformed payload, an index that refuses
    the document) or exhausted retries end here, and replays run on demand and on a schedule.
    """

    class Kind(models.TextChoices):
        PERMANENT = "permanent", "permanent error"
        EXHAUSTED = "exhausted", "retries exhausted"

    event = models.OneToOneField(WebhookEvent, on_delete=models.CASCADE, related_name="dead_letter")
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    error_class = models.CharField(max_length=128, blank=True)
    error = models.TextField(blank=True, help_text="the error message, or the index's error body")
    failures = models.PositiveIntegerField(default=1)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    next_replay_at = models.DateTimeField(null=True, blank=True)
    replays = models.PositiveIntegerField(default=0)
    last_replayed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=32, blank=True, help_text="applied after replay, or discarded")

    class Meta:
        ordering = ["-last_failed_at"]
        indexes = [
            models.Index(
                fields=["next_replay_at"], condition=Q(resolved_at__isnull=True), name="dead_letter_open"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} ({self.kind}): {self.error[:60]}"


class IndexHealth(models.Model):
    """Per index backend: whether writes are paused (feed blocked) and the last error seen."""

    alias = models.CharField(max_length=64, unique=True)
    paused_until = models.DateTimeField(null=True, blank=True)
    degraded_since = models.DateTimeField(
        null=True, blank=True, help_text="failing writes since; null when healthy"
    )
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.alias}: paused until {self.paused_until}" if self.paused_until else self.alias


class ShopMembership(models.Model):
    """A staff user's access to one shop: merchants (non-superusers) see only their shops' data."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shop_memberships"
    )
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "shop"], name="shop_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.shop}"


class SyncRun(models.Model):
    """One backfill or reconcile run of a shop, started from the admin or a command.

    `cursor` is the checkpoint: the number of source items whose products are written (catalog
    and index); it only advances after a batch's writes are done, never past unwritten data.
    """

    class Kind(models.TextChoices):
        BACKFILL = "backfill"
        RECONCILE = "reconcile"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="sync_runs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(max_length=500, blank=True, help_text="the import file, or the index checked")
    repair = models.BooleanField(default=False, help_text="reconcile: rewrite or remove drifted documents")
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expected = models.PositiveIntegerField(null=True, blank=True, help_text="items expected, when known")
    cursor = models.PositiveIntegerField(default=0, help_text="items read and written (the checkpoint)")
    counts = models.JSONField(default=dict, blank=True, help_text="outcome -> items")
    errors = models.JSONField(default=list, blank=True)
    summary = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} of {self.shop} #{self.pk} ({self.status})"
