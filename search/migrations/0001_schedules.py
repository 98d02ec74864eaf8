"""The embedding sweep, every 5 minutes: embeddings are woken on commit when a product's text
changes; this picks up lost wake-ups and re-embeds everything after EMBEDDING_ENCODER or
EMBEDDING_DTYPE changed (the stored model name no longer matches), in the background."""
from django.db import migrations

SCHEDULE = {"name": "search: embed pending", "func": "search.tasks.embed_pending", "schedule_type": "I", "minutes": 5}


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE["name"], defaults={**SCHEDULE, "repeats": -1}
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE["name"]).delete()


class Migration(migrations.Migration):
    dependencies = [("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
