"""Bulk inserts of many rows in the session's transaction: COPY on PostgreSQL (psycopg 3
``cursor.copy``), one executemany of a Core insert elsewhere (SQLite). No ORM object per
row, so no ORM events either: for rows written once (a run's lines and statement drafts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session


def insert_rows(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert ``rows`` (tuples in the order of ``columns``, the table's column names) into
    ``table`` within the session's current transaction."""
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        names = ", ".join(f'"{c}"' for c in columns)
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as cp:
            for row in rows:
                cp.write_row(row)
        return
    batch = [dict(zip(columns, row, strict=True)) for row in rows]
    if batch:
        connection.execute(insert(table), batch)
