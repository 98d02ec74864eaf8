"""Index backends chosen in settings (SEARCH_BACKENDS, shaped like Django's CACHES)."""

from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from .base import BaseBackend

_backends: dict[str, BaseBackend] = {}
_lock = threading.Lock()


def get_backend(alias: str | None = None) -> BaseBackend:
    """The configured backend instance (one per alias per process)."""
    alias = alias or settings.SEARCH_BACKEND
    with _lock:
        backend = _backends.get(alias)
        if backend is None:
            params = dict(settings.SEARCH_BACKENDS[alias])
            backend_cls = import_string(params.pop("BACKEND"))
            backend = _backends[alias] = backend_cls(alias, params)
        return backend


def reset_backends() -> None:
    """Forget every backend instance (settings changed, e.g. in tests)."""
    with _lock:
        for backend in _backends.values():
            backend.close()
        _backends.clear()
