"""What the search app keeps besides the index: the history of each product's embeddings."""

from __future__ import annotations

from django.db import models

from catalog.models import Product


class EmbeddingRecord(models.Model):
    """One embedding written for a product (its vector is on Product): which model embedded which
    text, and whether the vector was computed or reused from an identical text. The product's
    activity timeline reads these."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="embedding_records")
    model = models.CharField(max_length=128)
    text_hash = models.CharField(max_length=64)
    reused = models.BooleanField(default=False, help_text="an identical text's vector, not encoded again")
    created_at = models.DateTimeField()  # read per product: the (product, -created_at) index

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["product", "-created_at"], name="embedding_record_product")]

    def __str__(self) -> str:
        return f"{self.product_id}: {self.model} at {self.created_at:%Y-%m-%d %H:%M:%S}"
