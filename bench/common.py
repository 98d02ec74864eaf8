"""Helpers shared by the in-process benchmarks: a dedicated Postgres database, Django set up on it,
medians, and the results folder.

Import this before anything from the project: `django_setup` must run before models are imported.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")


def postgres_database_ensure(url: str) -> bool:
    """Create the database named in `url` unless it exists (via the server's `postgres` database).
    Returns whether it was created. Exits with a message for a URL that is not Postgres."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise SystemExit(f"DATABASE_URL must be a Postgres URL for this benchmark, got {parts.scheme!r}")
    name = parts.path.lstrip("/")
    conninfo = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "dbname": "postgres",
    }
    if parts.password:
        conninfo["password"] = unquote(parts.password)
    with psycopg.connect(autocommit=True, **conninfo) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def django_setup(*, database_url: str, index_path: Path) -> None:
    """Point the project at `database_url` and a fresh embedded index file, then set Django up."""
    os.environ.update(
        DATABASE_URL=database_url,
        SECRET_KEY="bench-only",
        DEBUG="0",  # DEBUG would keep every query in memory
        LOG_LEVEL="ERROR",
        SEARCH_BACKEND="embedded",
        EMBEDDED_INDEX_PATH=str(index_path),
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    os.environ.pop("REDIS_URL", None)  # wake-ups go to the database broker, where nobody listens
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def results_write(name: str, summary: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return path
