"""Startup checks: configurations that would silently process work twice are refused."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register


@register()
def q_cluster_retry_exceeds_timeout(app_configs, **kwargs) -> list[Error]:
    """django-q2 hands a task to a second worker after `retry` seconds; if that is not longer
    than `timeout`, a task still running is started again (django-q #183, #307)."""
    config = getattr(settings, "Q_CLUSTER", {})
    retry, timeout = config.get("retry"), config.get("timeout")
    if retry is not None and timeout is not None and retry <= timeout:
        return [
            Error(
                f"Q_CLUSTER retry ({retry}s) must be larger than timeout ({timeout}s), "
                "or a running task is handed to a second worker.",
                id="sync.E001",
            )
        ]
    return []
