"""The registry's one declarative base: every package's tables join its metadata.

Each package keeps its tables in its own ``models`` module; Alembic's environment
(``cloud/registry/migrations/env.py``) imports them all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Base of every mapped table (one metadata for the whole registry)."""


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """An instant read back from the registry, in UTC.

    Instants are stored in UTC; SQLite hands ``DateTime(timezone=True)`` values back without a
    zone, PostgreSQL with one. ``None`` stays ``None``.
    """
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
