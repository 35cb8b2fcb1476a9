"""Registry tables of the web application: staff accounts and their sessions, tenant
statement links, tenants' confirmations and disputes, gateway status, commands sent from the
engineer pages, and the audit log of what people did there.

Changed only through Alembic migrations (revision 0005). Secrets are never stored: a
session or API token is kept as the SHA-256 of its text, a password as its Argon2id hash.
Instants are UTC.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.registry.models import Base


class WebAccount(Base):
    """A staff account: ``role`` is ``admin``, ``finance`` or ``engineer``; ``sites`` the
    site ids it may act on (an admin acts on every site)."""

    __tablename__ = "web_accounts"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A signed-in session (browser cookie) or API token, stored as the SHA-256 of its
    text; ``csrf`` is the double-submit token of browser forms."""

    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("web_accounts.username"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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


class GatewayStatus(Base):
    """The latest of a gateway's state topic (online/offline) and its signed health."""

    __tablename__ = "gateway_status"

    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    online: Mapped[bool | None] = mapped_column(Boolean)
    state_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    health_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    kid: Mapped[str | None] = mapped_column(String(64))
    epoch: Mapped[int | None] = mapped_column(Integer)
    clock: Mapped[str | None] = mapped_column(String(16))
    uptime_s: Mapped[float | None] = mapped_column(Float)
    pending_readings: Mapped[int | None] = mapped_column(Integer)
    unacked_envelopes: Mapped[int | None] = mapped_column(Integer)
    oldest_age_s: Mapped[float | None] = mapped_column(Float)
    outbox_alarm: Mapped[bool | None] = mapped_column(Boolean)
    evicted_readings: Mapped[int | None] = mapped_column(BigInteger)
    meters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class GatewayCommandRecord(Base):
    """A signed command sent to a gateway and, once it came, its verified answer."""

    __tablename__ = "gateway_commands"

    cmd_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64))
    gateway_id: Mapped[str] = mapped_column(String(64), index=True)
    command: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    issued_by: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Who did what to which subject, when (staff actions and tenants' answers)."""

    __tablename__ = "web_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
