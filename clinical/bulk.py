"""Bulk writes for large imports. On PostgreSQL, rows that cannot conflict with anything (those of
brand-new visits) go in by COPY with ids allocated up front from the table's own sequence;
elsewhere (SQLite, the embedded demo) the same rows go through bulk_create."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Model


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def allocate_ids(model: type[Model], count: int) -> list[int]:
    """Reserve `count` primary keys from the model's identity sequence (PostgreSQL only)."""
    if count == 0:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count])
        return [row[0] for row in cursor.fetchall()]


def copy_rows(model: type[Model], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY rows into the model's table (PostgreSQL only). Constraints and foreign keys still apply."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
