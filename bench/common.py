"""Helpers shared by the in-process benchmarks: a dedicated Postgres database, Django set up on it,
medians, the results folder, and a profile of a block (cProfile, SQL statements, commits).

Import this before anything from the project: `django_setup` must run before models are imported.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOP_FUNCTIONS = 25
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
    with psycopg.connect(_conninfo(url, "postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def postgres_database_drop(url: str) -> None:
    """Drop the database named in `url` if it exists (fails while anyone is connected to it)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(_conninfo(url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database_name(url))))


@contextlib.contextmanager
def database_lock(url: str, name: str) -> Iterator[None]:
    """Hold a Postgres advisory lock named `name` on its own connection (Django's may be closed and
    reopened meanwhile), so two runs of one benchmark cannot empty each other's tables. Exits with
    a message when another run holds it."""
    import psycopg

    with psycopg.connect(_conninfo(url, database_name(url)), autocommit=True) as conn:
        held = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (name,)).fetchone()[0]
        if not held:
            raise SystemExit(f"another run of {name} is using {database_name(url)}; try again when it ends")
        yield


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _conninfo(url: str, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    parts = urlsplit(url)
    return make_conninfo(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        dbname=dbname,
    )


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


class SqlProfile:
    """cProfile plus every SQL statement Django sends (count and time per statement shape) and the
    transactions Postgres committed, around a block: `with SqlProfile() as profile: ...`."""

    def __init__(self) -> None:
        self.profiler = cProfile.Profile()
        self.shapes: dict[str, list] = defaultdict(lambda: [0, 0.0])  # shape -> [count, seconds]
        self.commits = 0

    def __enter__(self) -> SqlProfile:
        from django.db import connection

        self._commits_before = commits_counted()
        self._wrapper = connection.execute_wrapper(self._count)
        self._wrapper.__enter__()
        self.profiler.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        self.profiler.disable()
        self._wrapper.__exit__(*exc)
        self.commits = commits_counted() - self._commits_before

    def _count(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            shape = self.shapes[sql_shape(sql)]
            shape[0] += 1
            shape[1] += time.perf_counter() - start

    def print_statements(self, *, events: int, seconds: float, top: int = 12) -> None:
        kinds: Counter[str] = Counter()
        for shape, (count, _) in self.shapes.items():
            kinds[shape.split(None, 1)[0]] += count
        per_event = ", ".join(f"{kind} {n / events:.2f}" for kind, n in kinds.most_common())
        inside = sum(spent for _, spent in self.shapes.values())
        print(f"SQL statements per event: {per_event}")
        print(
            f"commits per event: {self.commits / events:.2f}; inside SQL statements: {inside:.1f} s "
            f"of {seconds:.1f} s (wall, with the profiler's overhead)"
        )
        print("--- SQL statements by total time (count, total s, mean ms):")
        for shape, (count, spent) in sorted(self.shapes.items(), key=lambda kv: -kv[1][1])[:top]:
            print(f"  {count:7d} {spent:7.2f} {1000 * spent / count:7.3f}  {shape[:150]}")

    def print_functions(self, *, apps: tuple[str, ...], save_to: Path) -> None:
        """Top functions by cumulative and by own time, then those of `apps` by cumulative time;
        the profile is saved to `save_to` (for snakeviz or pstats)."""
        for sort in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(self.profiler, stream=out).strip_dirs().sort_stats(sort).print_stats(TOP_FUNCTIONS)
            print(f"--- top {TOP_FUNCTIONS} by {sort} time:\n" + _stats_table(out.getvalue()))
        out = io.StringIO()
        ours = rf"^{re.escape(str(ROOT))}/({'|'.join(apps)})/"
        pstats.Stats(self.profiler, stream=out).sort_stats("cumulative").print_stats(ours, TOP_FUNCTIONS)
        text = _stats_table(out.getvalue()).replace(f"{ROOT}/", "")
        print(f"--- top {TOP_FUNCTIONS} of the project's own functions by cumulative time:\n{text}")
        save_to.parent.mkdir(parents=True, exist_ok=True)
        self.profiler.dump_stats(save_to)
        print(f"(profile saved to {save_to})")


def sql_shape(sql: str) -> str:
    """The statement with its IN lists and savepoint names folded, so one shape counts once."""
    sql = re.sub(r"IN \((?:%s, )*%s\)", "IN (...)", " ".join(sql.split()))
    return re.sub(r'"s\d+_x\d+"', '"s_x"', sql)


def commits_counted() -> int:
    """Transactions committed in Django's database so far (this backend's counters are flushed
    first on Postgres 15+; older servers count up to half a second late)."""
    from django.db import DatabaseError, connection

    with connection.cursor() as cursor:
        with contextlib.suppress(DatabaseError):
            cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def _stats_table(text: str) -> str:
    """pstats output from its header line on (drops the preamble)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(line for line in lines[start:] if line.strip())
