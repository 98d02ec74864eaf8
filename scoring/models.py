"""Trend scoring's records: every score with its inputs, imported external signals, and the
search query log that measures demand."""

from __future__ import annotations

from django.db import models

from catalog.models import Product, Shop


class TrendScore(models.Model):
    """One computed score (the latest is also on Product.trend_score): kept as a history per
    product, with the signals and their times it came from, so any score can be explained."""

    class Scorer(models.TextChoices):
        LOCAL = "local"
        LLM = "llm"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="trend_scores")
    score = models.FloatField()
    explanation = models.TextField()
    scorer = models.CharField(max_length=8, choices=Scorer.choices, help_text="what produced the score")
    requested_scorer = models.CharField(max_length=8, choices=Scorer.choices)
    fallback = models.BooleanField(default=False, help_text="llm was asked; local answered")
    fallback_reason = models.CharField(max_length=255, blank=True)
    model = models.CharField(max_length=128, blank=True)
    prompt_version = models.CharField(max_length=32, blank=True)
    inputs_hash = models.CharField(max_length=64)
    signals = models.JSONField(default=dict, help_text="name -> value, normalized score, time")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["product", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.score:.3f} ({self.scorer})"


class ExternalSignal(models.Model):
    """A signal from outside the store (competitor price, social mentions), imported from CSV."""

    class Kind(models.TextChoices):
        COMPETITOR_PRICE = "competitor_price"
        SOCIAL_MENTIONS = "social_mentions"

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="external_signals")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    value = models.FloatField()
    observed_at = models.DateTimeField()
    source = models.CharField(max_length=255, blank=True)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "kind", "observed_at"], name="external_signal_unique")
        ]
        indexes = [models.Index(fields=["product", "kind", "-observed_at"])]

    def __str__(self) -> str:
        return f"{self.product_id} {self.kind}={self.value} @ {self.observed_at:%Y-%m-%d}"


class SearchQuery(models.Model):
    """One search a shopper (or the search command) made, and the products it showed."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    query = models.CharField(max_length=512)
    mode = models.CharField(max_length=16)
    results = models.JSONField(default=list, help_text="document ids shown, best first")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name_plural = "search queries"

    def __str__(self) -> str:
        return self.query
