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


@register()
def lease_outlasts_an_index_write(app_configs, **kwargs) -> list[Error]:
    """A claimed batch's events are leased for SYNC_LEASE_SECONDS; the drain renews the lease
    between its steps, but not during the one blocking index call. If that call may outlast the
    lease, another worker takes the batch's events while it is still being written."""
    from django.utils.module_loading import import_string

    from .claims import LEASE_MARGIN_SECONDS

    alias = settings.SEARCH_BACKEND
    params = dict(settings.SEARCH_BACKENDS.get(alias, {}))
    try:
        backend_cls = import_string(params.pop("BACKEND"))
    except (KeyError, ImportError):
        return []  # a missing or wrong backend fails loudly where it is used
    longest = backend_cls.longest_write_seconds(params)
    lease = settings.SYNC_LEASE_SECONDS
    if longest is not None and lease <= longest + 2 * LEASE_MARGIN_SECONDS:
        return [
            Error(
                f"SYNC_LEASE_SECONDS ({lease:g}s) must be more than the longest index write of "
                f"backend {alias!r} ({longest:g}s: its DEADLINE + REQUEST_TIMEOUT + 5 s) plus "
                f"{2 * LEASE_MARGIN_SECONDS:g}s, or a batch still being written is taken by a second worker.",
                id="sync.E002",
            )
        ]
    return []
