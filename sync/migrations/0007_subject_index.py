"""The index on WebhookEvent.subject_id, built CONCURRENTLY on Postgres so a deploy never blocks
webhook ingest. A concurrent build that failed leaves an invalid index behind: it is dropped
first, so running the migration again finishes the job.
"""

from django.db import migrations, models
from django.db.models import Q

INDEX = models.Index(
    fields=["shop", "subject_id"], condition=Q(subject_id__isnull=False), name="webhook_event_subject"
)


def create_index(apps, schema_editor):
    model = apps.get_model("sync", "WebhookEvent")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{INDEX.name}"')
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
    dependencies = [("sync", "0006_subject")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="webhookevent", index=INDEX)],
            database_operations=[migrations.RunPython(create_index, drop_index, atomic=False)],
        ),
    ]
