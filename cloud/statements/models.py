"""Statement-access table: the tenant statement links (tenants' answers to a statement are
``cloud.apportion.models.StatementConfirmation`` and ``StatementDispute``).

Changed only through Alembic migrations (revision 0005). A link's token is never stored, only
its hash. Instants are UTC.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Date,
    DateTime,
    ForeignKey,
    Index,
    String,
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
