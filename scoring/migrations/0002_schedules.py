"""The django-q2 schedules of trend scoring.

- requested sweep, every 5 minutes: rescore requests are stored on the product and woken on
  commit; this picks up any whose wake-up was lost.
- daily at 02:00 UTC: every live product, rescored only where its signals changed.
- weekly (Sunday 03:00 UTC): a full recompute.
"""
from datetime import datetime, time, timedelta, timezone

from django.db import migrations


def _next(hour, weekday=None):
    now = datetime.now(timezone.utc)
    run = datetime.combine(now.date(), time(hour), tzinfo=timezone.utc)
    while run <= now or (weekday is not None and run.weekday() != weekday):
        run += timedelta(days=1)
    return run


def schedules():
    return [
        {"name": "scoring: rescore requested", "func": "scoring.tasks.rescore_requested", "schedule_type": "I", "minutes": 5},
        {"name": "scoring: rescore changed signals daily", "func": "scoring.tasks.rescore_changed", "schedule_type": "D", "minutes": None, "next_run": _next(2)},
        {"name": "scoring: full recompute weekly", "func": "scoring.tasks.rescore_all", "schedule_type": "W", "minutes": None, "next_run": _next(3, weekday=6)},
    ]


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in schedules():
        Schedule.objects.update_or_create(name=schedule["name"], defaults={**schedule, "repeats": -1})


def delete_schedules(apps, schema_editor):
    names = [s["name"] for s in schedules()]
    apps.get_model("django_q", "Schedule").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [("scoring", "0001_initial"), ("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_schedules, delete_schedules)]
