"""WebhookEvent.subject_id: the Shopify id a delivery is about, so a product's deliveries are found
by an index instead of by scanning bodies. The column is nullable (adding it rewrites nothing);
the index is built CONCURRENTLY on Postgres so a deploy never blocks webhook ingest. Deliveries
stored before this migration have no subject and are still found by their bodies.
"""

from django.db import migrations, models
from django.db.models import Q

INDEX = models.Index(
    fields=["shop", "subject_id"], condition=Q(subject_id__isnull=False), name="webhook_event_subject"
)


def create_index(apps, schema_editor):
    model = apps.get_model("sync", "WebhookEvent")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(model, INDEX, concurrently=True)
    else:
        schema_editor.add_index(model, INDEX)


def drop_index(apps, schema_editor):
    model = apps.get_model("sync", "WebhookEvent")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(model, INDEX, concurrently=True)
    else:
        schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction
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
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="webhookevent", index=INDEX)],
            database_operations=[migrations.RunPython(create_index, drop_index, atomic=False)],
        ),
    ]
