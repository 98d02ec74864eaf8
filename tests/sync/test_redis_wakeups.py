"""With REDIS_URL set, worker wake-ups go through the real Redis (settings are read at start-up,
so this runs in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from tests.helpers import ROOT

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_available() -> bool:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _redis_available(), reason=f"no Redis at {REDIS_URL}")
def test_wakeup_is_queued_in_redis_and_a_worker_can_take_it():
    name = f"shopsync-test-{uuid.uuid4().hex[:8]}"
    code = f"""
import django
from django.conf import settings
django.setup()
settings.Q_CLUSTER["name"] = {name!r}
from django_q.brokers import get_broker
from django_q.conf import Conf
Conf.PREFIX = Conf.CLUSTER_NAME = {name!r}
broker = get_broker({name!r})
from sync.queue import _send_wakeup
_send_wakeup()
size = broker.queue_size()
task = broker.dequeue()
broker.delete_queue()
print(type(broker).__name__, size, bool(task))
"""
    env = {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "test",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Redis", "1", "True"]
