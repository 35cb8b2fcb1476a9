"""The registry's one declarative base: every package's tables join its metadata.

Each package keeps its tables in its own ``models`` module; Alembic's environment
(``cloud/registry/migrations/env.py``) imports them all.
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Base of every mapped table (one metadata for the whole registry)."""
