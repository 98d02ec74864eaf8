"""The django-q2 schedules of the sync app.

- drain sweep, every minute: wake-ups are sent on commit by the web process but can be lost (a
  worker killed, a Redis restart); the WebhookEvent table is the truth, so this sweep is all it
  takes to pick up anything left pending, including retries whose backoff has passed.
- dead-letter replay, every 15 minutes: replays the letters whose next replay time has come.
- reconcile, daily: compares every shop's index with the stored truth and repairs drift.
"""
from django.db import migrations

SCHEDULES = [
    {"name": "sync: drain sweep", "func": "sync.tasks.drain_pending", "schedule_type": "I", "minutes": 1},
    {"name": "sync: replay dead letters", "func": "sync.tasks.replay_dead_letters", "schedule_type": "I", "minutes": 15},
    {"name": "sync: reconcile all shops", "func": "sync.tasks.reconcile_all_shops", "schedule_type": "D", "minutes": None},
]


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in SCHEDULES:
        Schedule.objects.update_or_create(name=schedule["name"], defaults={**schedule, "repeats": -1})


def delete_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=[s["name"] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("sync", "0001_initial"), ("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_schedules, delete_schedules)]
