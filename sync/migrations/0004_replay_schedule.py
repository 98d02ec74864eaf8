"""A django-q2 schedule that replays due dead letters every 15 minutes."""
from django.db import migrations


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="sync: replay dead letters",
        defaults={"func": "sync.tasks.replay_dead_letters", "schedule_type": "I", "minutes": 15, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="sync: replay dead letters").delete()


class Migration(migrations.Migration):
    dependencies = [("sync", "0003_dead_letters_index_health"), ("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
