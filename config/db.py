"""Database helpers that Django's ORM makes slow on hot paths.

`bulk_set` updates many rows with different values in one statement (UPDATE ... FROM VALUES).
Django's `bulk_update` builds a CASE expression per row and column in Python: for a drain batch of
500 events that took over a second of CPU; this takes a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connections, models, router

# Rows per statement: keeps a statement's parameters well under every driver's limit.
CHUNK = 500


def bulk_set(model: type[models.Model], fields: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> int:
    """Set `fields` of each row's primary key: rows are (pk, value, value, ...). Returns rows updated."""
    if not rows:
        return 0
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    assignments = ", ".join(
        f"{quote(f.column)} = {_cast(connection, f, f'v.column{i + 2}')}" for i, f in enumerate(columns)
    )
    updated = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            placeholders = ", ".join("(" + ", ".join(["%s"] * (len(fields) + 1)) + ")" for _ in chunk)
            params: list[Any] = []
            for row in chunk:
                params.append(row[0])
                params += [
                    f.get_db_prep_save(value, connection) for f, value in zip(columns, row[1:], strict=True)
                ]
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM (VALUES {placeholders}) AS v "  # noqa: S608 (model identifiers)
                f"WHERE {table}.{pk} = v.column1",
                params,
            )
            updated += cursor.rowcount
    return updated


def _cast(connection, field: models.Field, expression: str) -> str:
    """Postgres types VALUES columns from their literals; say what the column really is."""
    if connection.vendor != "postgresql":
        return expression
    return f"CAST({expression} AS {field.db_type(connection)})"
