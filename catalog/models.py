"""Shops and the canonical products we hold for them (the truth the index is derived from)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Shop(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        UNINSTALLED = "uninstalled"

    domain = models.CharField(max_length=255, unique=True, help_text="the *.myshopify.com domain")
    name = models.CharField(max_length=255, blank=True)
    # Per-shop webhook secrets override SHOPIFY_WEBHOOK_SECRETS (e.g. admin-created subscriptions,
    # which Shopify signs with a different key). The previous one is accepted during rotation.
    webhook_secret = models.CharField(max_length=255, blank=True)
    webhook_secret_previous = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain

    def accepted_secrets(self) -> list[str]:
        own = [s for s in (self.webhook_secret, self.webhook_secret_previous) if s]
        return own or list(settings.SHOPIFY_WEBHOOK_SECRETS)


class ProductQuerySet(models.QuerySet):
    def live(self) -> ProductQuerySet:
        """Products that still exist in Shopify (deleted ones are kept as tombstones)."""
        return self.filter(deleted_at__isnull=True)


class Product(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        DRAFT = "draft"
        ARCHIVED = "archived"

    class UpdateType(models.TextChoices):
        MANUAL = "manual", "manual (merchant content change)"
        AUTO = "auto", "auto (inventory/order-driven)"

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="products")
    # 64-bit: Shopify ids exceed 2^53. Null for products imported from a CSV export (which has
    # no ids); they are keyed by handle until the first webhook links them.
    shopify_id = models.BigIntegerField(null=True, blank=True)
    handle = models.CharField(max_length=255, blank=True)
    title = models.CharField(max_length=512)
    body_html = models.TextField(blank=True)
    vendor = models.CharField(max_length=255, blank=True)
    product_type = models.CharField(max_length=255, blank=True)
    category = models.CharField(max_length=512, blank=True)
    tags = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    options = models.JSONField(default=list, blank=True)
    images = models.JSONField(default=list, blank=True)
    metafields = models.JSONField(default=dict, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    shopify_created_at = models.DateTimeField(null=True, blank=True)
    shopify_updated_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="when Shopify deleted it; the row stays as a tombstone so late deliveries cannot "
        "bring it back",
    )

    # What changed is decided by these hashes (DESIGN §4.5): no content write without a new
    # search_hash, no re-embedding without a new embed_text_hash, no rescore without new inputs.
    search_hash = models.CharField(max_length=64, blank=True)
    embed_text_hash = models.CharField(max_length=64, blank=True)
    score_inputs_hash = models.CharField(max_length=64, blank=True)
    # One counter per writer (shopify, inventory, ...), bumped under the row lock on each change;
    # index_vector holds the components the index has confirmed. A component of version_vector
    # above index_vector is a pending index write: it survives crashes and failed writes.
    version_vector = models.JSONField(default=dict, blank=True)
    index_vector = models.JSONField(default=dict, blank=True)
    # The embedding writer's state: the vector (float32 bytes, 384 dims), the model that made it
    # and the hash of the text it was made from. Pending while embedded_text_hash differs from
    # embed_text_hash or the model is not the configured one (search.embeddings).
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=128, blank=True)
    embedded_text_hash = models.CharField(max_length=64, blank=True)
    embedded_at = models.DateTimeField(null=True, blank=True)
    # The scoring writer's state: the latest trend score in [0, 1], why, and the hash of the
    # signals it was computed from (scoring skips a product whose inputs hash is unchanged).
    # Every score ever stored is kept in scoring.TrendScore.
    trend_score = models.FloatField(null=True, blank=True)
    trend_explanation = models.TextField(blank=True)
    trend_inputs_hash = models.CharField(max_length=64, blank=True)
    trend_scored_at = models.DateTimeField(null=True, blank=True)
    # Set when a change asks for a rescore (content inputs, a new order); the scoring worker
    # takes these first and clears it. The queue is this column, task messages only wake it.
    trend_requested_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_updated_source = models.CharField(max_length=32, blank=True)
    update_type = models.CharField(max_length=8, choices=UpdateType.choices, blank=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    objects = ProductQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "shopify_id"],
                condition=Q(shopify_id__isnull=False),
                name="product_unique_shop_shopify_id",
            ),
            models.UniqueConstraint(
                fields=["shop", "handle"],
                condition=Q(shopify_id__isnull=True),
                name="product_unique_shop_handle_without_id",
            ),
        ]
        indexes = [models.Index(fields=["shop", "handle"])]

    def __str__(self) -> str:
        return self.title

    @property
    def is_searchable(self) -> bool:
        return self.deleted_at is None and self.status == self.Status.ACTIVE


class Variant(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="variants")
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")  # for inventory joins
    shopify_id = models.BigIntegerField(null=True, blank=True)
    title = models.CharField(max_length=512, blank=True)
    sku = models.CharField(max_length=255, blank=True)
    barcode = models.CharField(max_length=255, blank=True)
    price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    compare_at_price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    position = models.PositiveIntegerField(default=1)
    option_values = models.JSONField(default=list, blank=True)
    inventory_item_id = models.BigIntegerField(null=True, blank=True)
    # Total over locations as the product payload reports it; per-location truth is InventoryLevel.
    inventory_quantity = models.IntegerField(null=True, blank=True)
    inventory_policy = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["product_id", "position"]
        indexes = [models.Index(fields=["shop", "inventory_item_id"])]

    def __str__(self) -> str:
        return f"{self.product_id}/{self.title or self.position}"


class InventoryLevel(models.Model):
    """Stock of one inventory item at one location, ordered by its own updated_at.

    Kept even when no variant references the item yet (an inventory webhook can arrive before the
    product's create): the level is parked here and counted once the product appears.
    """

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="inventory_levels")
    inventory_item_id = models.BigIntegerField()
    location_id = models.BigIntegerField()
    available = models.IntegerField(null=True, blank=True)
    shopify_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "inventory_item_id", "location_id"], name="inventory_level_unique"
            )
        ]

    def __str__(self) -> str:
        return f"item {self.inventory_item_id} @ location {self.location_id}: {self.available}"


class OrderLine(models.Model):
    """One line item of an order: the raw material of sales-velocity signals for scoring."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="order_lines")
    order_id = models.BigIntegerField()
    line_item_id = models.BigIntegerField()
    product_shopify_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    variant_shopify_id = models.BigIntegerField(null=True, blank=True)
    sku = models.CharField(max_length=255, blank=True)
    title = models.CharField(max_length=512, blank=True)
    quantity = models.IntegerField(default=0)
    price = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    ordered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "line_item_id"], name="order_line_unique")]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.quantity} x {self.title}"
