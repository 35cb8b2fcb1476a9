"""Bulk reads and writes in the session's transaction: plain tuples in, COPY out.

The lease billing run and the monthly close read and write rows by the hundred thousand
(a run's lines and statement drafts, invoices and their lines). On PostgreSQL both go
straight through the driver (psycopg): :func:`fetch_all` runs a SQLAlchemy statement on the
session's connection and returns the driver's tuples (SQLAlchemy's row objects cost about
three times the query itself at 100,000 rows), :func:`bulk_insert` writes with COPY and
:func:`copy_into` streams rows into a COPY while the caller is still making them (the server
stores them meanwhile). On other databases (SQLite in tests and the embedded set-up) they
use the session as usual. Either way the statements run in the session's transaction
(decisions 0027, 0029). No ORM object per row, so no ORM events either: for rows written
once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Executable, Table
from sqlalchemy.orm import Session


def _copies(dialect: Any) -> bool:
    """Whether COPY goes through the driver: PostgreSQL with psycopg 3."""
    return bool(dialect.name == "postgresql" and dialect.driver == "psycopg")


def on_postgres(session: Session) -> bool:
    """Whether the session's database is PostgreSQL."""
    return session.get_bind().dialect.name == "postgresql"


def fetch_all(
    session: Session, statement: Executable, params: dict[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """Every row of ``statement`` as a plain tuple, in the session's transaction."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return [tuple(row) for row in session.execute(statement, params or {})]
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    values = dict(compiled.params)
    values.update(params or {})
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(compiled.string, values)
        return cursor.fetchall()


def bulk_insert(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """Insert ``rows`` in one go: COPY on PostgreSQL, executemany elsewhere."""
    rows = list(rows)
    if not rows:
        return
    connection = session.connection()
    if _copies(connection.dialect):
        raw = connection.connection.driver_connection
        names = ", ".join(f'"{c}"' for c in columns)
        with (
            raw.cursor() as cursor,  # type: ignore[union-attr]
            cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    session.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])


@contextmanager
def copy_into(
    session: Session, table: Table, columns: Sequence[str], json_columns: Collection[str] = ()
) -> Iterator[Callable[[Sequence[object]], None]]:
    """A function that writes one row into ``table``, for the body of the ``with``: rows go
    into one COPY as they come on PostgreSQL, in one executemany at the end elsewhere.

    On PostgreSQL the server stores each row while the body goes on: a row written early
    (a run with its large input snapshot) is stored while the caller computes the next.
    Values of ``json_columns`` are plain JSON values (the column's type encodes them)."""
    connection = session.connection()
    if _copies(connection.dialect):
        raw = connection.connection.driver_connection
        names = ", ".join(f'"{c}"' for c in columns)
        encode = [c in json_columns for c in columns]
        with (
            raw.cursor() as cursor,  # type: ignore[union-attr]
            cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy,
        ):
            if not any(encode):
                yield copy.write_row
            else:

                def write(row: Sequence[object]) -> None:
                    copy.write_row(
                        [
                            json.dumps(v, ensure_ascii=False) if e and v is not None else v
                            for v, e in zip(row, encode, strict=True)
                        ]
                    )

                yield write
        return
    rows: list[Sequence[object]] = []
    yield rows.append
    bulk_insert(session, table, columns, rows)
