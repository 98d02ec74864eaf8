"""The dashboard's partial covering indexes on WebhookEvent, built CONCURRENTLY on Postgres so a
deploy never blocks webhook ingest while they build on a large table (a plain CREATE INDEX holds a
lock that stops INSERTs for the whole build). The ingest INSERT never adds entries to them: each is
partial on a state a new pending delivery is not in (see bench/dashboard.py for the measurement).
"""
from django.db import migrations, models
from django.db.models import Q

INDEXES = [
    models.Index(
        fields=["received_at"],
        include=["processed_at", "triggered_at", "status", "outcome", "shop"],
        condition=Q(processed_at__isnull=False),
        name="webhook_event_finished",
    ),
    models.Index(fields=["received_at"], include=["shop"], condition=Q(status="rejected"), name="webhook_event_rejected"),
    models.Index(
        fields=["received_at"],
        include=["duplicate_deliveries", "shop"],
        condition=Q(duplicate_deliveries__gt=0),
        name="webhook_event_repeated",
    ),
]


def create_indexes(apps, schema_editor):
    model = apps.get_model("sync", "WebhookEvent")
    concurrently = schema_editor.connection.vendor == "postgresql"
    for index in INDEXES:
        if concurrently:
            schema_editor.add_index(model, index, concurrently=True)
        else:
            schema_editor.add_index(model, index)


def drop_indexes(apps, schema_editor):
    model = apps.get_model("sync", "WebhookEvent")
    concurrently = schema_editor.connection.vendor == "postgresql"
    for index in INDEXES:
        if concurrently:
            schema_editor.remove_index(model, index, concurrently=True)
        else:
            schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction
    dependencies = [("sync", "0003_console")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="webhookevent", index=index) for index in INDEXES],
            database_operations=[migrations.RunPython(create_indexes, drop_indexes, atomic=False)],
        )
    ]
