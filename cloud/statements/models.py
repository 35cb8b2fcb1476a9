"""Statement-access tables: tenant statement links, tenants' confirmations and disputes.

Changed only through Alembic migrations (revision 0005). A link's token is never stored, only
its hash. Instants are UTC.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

import cloud.apportion.models  # noqa: F401  (links and answers refer to apportion_runs)
from cloud.registry.base import Base


class TenantLink(Base):
    """A tenant's link to one statement (run, unit node, party): the token's nonce, its
    expiry, and the day from which it is revoked (a lease ended)."""

    __tablename__ = "tenant_links"
    __table_args__ = (Index("ix_tenant_links_statement", "run_id", "unit", "party"),)

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("apportion_runs.id"))
    unit: Mapped[str] = mapped_column(String(64), index=True)
    party: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_on: Mapped[date | None] = mapped_column(Date)


class StatementConfirmation(Base):
    """A tenant confirmed a statement through a link (once per statement)."""

    __tablename__ = "statement_confirmations"

    run_id: Mapped[str] = mapped_column(ForeignKey("apportion_runs.id"), primary_key=True)
    unit: Mapped[str] = mapped_column(String(64), primary_key=True)
    party: Mapped[str] = mapped_column(String(64), primary_key=True)
    link_nonce: Mapped[str] = mapped_column(String(32))
    confirmed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    total_cents: Mapped[int] = mapped_column(BigInteger)


class StatementDispute(Base):
    """A tenant disputed a statement with a comment; finance resolves it."""

    __tablename__ = "statement_disputes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("apportion_runs.id"), index=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    unit: Mapped[str] = mapped_column(String(64))
    party: Mapped[str] = mapped_column(String(64))
    link_nonce: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolution: Mapped[str | None] = mapped_column(Text)
