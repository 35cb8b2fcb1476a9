"""Registry tables: sites, gateways and their keys, meters, and the ingest ledger.

Changed only through Alembic migrations (``cloud/registry/migrations``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Site(Base):
    __tablename__ = "sites"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")


class Gateway(Base):
    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GatewayKey(Base):
    """A gateway's Ed25519 public key; ``kid`` is its RFC 7638 thumbprint."""

    __tablename__ = "gateway_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Meter(Base):
    __tablename__ = "meters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    gateway_id: Mapped[str | None] = mapped_column(ForeignKey("gateways.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("meters.id"))


class SeenEnvelope(Base):
    """One row per accepted envelope: the (gateway, seq) duplicate filter."""

    __tablename__ = "seen_envelopes"

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(Integer)
    reading_count: Mapped[int] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeadLetter(Base):
    """A message ingest refused, kept with the reason; never turned into readings."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    topic: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


# The other packages' tables join Base.metadata (Alembic compares against it).
from cloud.leases import models as lease_models  # noqa: E402, F401
from cloud.registry import models_provisioning, models_web  # noqa: E402, F401
from cloud.risk import models as risk_models  # noqa: E402, F401
