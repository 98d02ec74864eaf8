"""WebhookEvent.subject_id: the Shopify id a delivery is about, so a product's deliveries are found
by an index instead of by scanning bodies. A nullable column without a default: adding it
rewrites nothing and holds its lock for an instant. Its index is built in 0007, concurrently.
Deliveries stored before this migration have no subject and are still found by their bodies.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("sync", "0005_stored_at_help")]
    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="subject_id",
            field=models.BigIntegerField(
                blank=True,
                help_text="the Shopify id the delivery is about, read at ingest: the product (products/*), "
                "the inventory item (inventory_levels/update) or the order (orders/*)",
                null=True,
            ),
        ),
    ]
