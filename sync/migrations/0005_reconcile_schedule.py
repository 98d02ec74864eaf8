"""A daily django-q2 schedule that reconciles every shop's index with the stored truth."""
from django.db import migrations


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="sync: reconcile all shops",
        defaults={"func": "sync.tasks.reconcile_all_shops", "schedule_type": "D", "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="sync: reconcile all shops").delete()


class Migration(migrations.Migration):
    dependencies = [("sync", "0004_replay_schedule"), ("django_q", "0018_task_success_index")]
    operations = [migrations.RunPython(create_schedule, delete_schedule)]
