"""A django-q2 schedule that wakes the drain every minute.

Wake-ups are sent on commit by the web process, but a wake-up can be lost (a worker killed, a
Redis restart). The WebhookEvent table is the truth, so this sweep is all it takes to pick up
anything left pending, including retries whose backoff has passed.
"""
from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="sync: drain sweep",
        defaults={"func": "sync.tasks.drain_pending", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="sync: drain sweep").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
