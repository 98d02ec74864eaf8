"""The worker wiring: wake-ups after commit, the sweep schedule, and the django-q2 safety check."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django_q.models import OrmQ, Schedule

from sync.tasks import drain_pending
from tests.conftest import post_webhook, webhook_body

pytestmark = pytest.mark.django_db
FEEDER8 = "products_update__feeder8_2024-01__raw_body.json"


def test_stored_delivery_wakes_the_worker_once_per_debounce_window(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_webhook(client, webhook_body(FEEDER8), webhook_id="a")
        post_webhook(client, webhook_body(FEEDER8), webhook_id="b")
    assert OrmQ.objects.count() == 1  # one wake-up drains both: the table is the truth


def test_drain_task_processes_what_is_pending(client):
    post_webhook(client, webhook_body(FEEDER8), webhook_id="a")
    assert drain_pending()["applied"] == 1
    assert drain_pending()["processed"] == 0  # a duplicate wake-up finds nothing to do


def test_sweep_schedule_exists():
    schedule = Schedule.objects.get(name="sync: drain sweep")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("sync.tasks.drain_pending", "I", 1)


def test_check_refuses_a_lease_shorter_than_the_longest_index_write(settings):
    settings.SEARCH_BACKENDS = {
        **settings.SEARCH_BACKENDS,
        "vespa": {
            "BACKEND": "search.backends.vespa.VespaBackend",
            "URL": "http://vespa:8080",
            "DEADLINE": 60,
        },
    }
    settings.SEARCH_BACKEND = "vespa"
    call_command("check")  # the defaults: a 120 s lease against at most 75 s of writing
    settings.SYNC_LEASE_SECONDS = 80
    with pytest.raises(SystemCheckError, match="SYNC_LEASE_SECONDS"):
        call_command("check")


def test_check_refuses_retry_not_larger_than_timeout(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 300, "retry": 300}
    with pytest.raises(SystemCheckError, match="retry"):
        call_command("check")
