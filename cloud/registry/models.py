"""Registry tables: sites, gateways and their keys, and meters — what the other packages refer to.

Changed only through Alembic migrations (``cloud/registry/migrations``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from cloud.registry.base import Base


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


class GatewayRevocation(Base):
    """Keys of a gateway revoked together (revision 0030, decision 0043): by an engineer or
    an admin because the gateway was lost, stolen or decommissioned (``other`` with a note),
    or as the side effect of new hardware (``replaced``). Rows are never changed; the ingest
    notices a new row and forgets the keys it cached, so a revocation holds from its next
    batch on."""

    __tablename__ = "gateway_revocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    #: ``lost``, ``stolen``, ``decommissioned``, ``other`` or ``replaced``.
    reason: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    revoked_by: Mapped[str] = mapped_column(String(100))
    #: Where from: ``web 10.0.0.5``, ``api …``, ``cli``, ``provision``, ``replacement``.
    origin: Mapped[str] = mapped_column(String(100))
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: The key ids this revocation revoked.
    kids: Mapped[list[str]] = mapped_column(JSON, default=list)


class Meter(Base):
    """A meter of a site. Its id is unique within the site only (two sites may both have a
    ``MAIN``); the rows of a site are the meters its gateways may report (see
    ``cloud.ingest.ownership``). ``parent_id`` names a meter of the same site."""

    __tablename__ = "meters"
    __table_args__ = (
        ForeignKeyConstraint(["site_id", "parent_id"], ["meters.site_id", "meters.id"]),
    )

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True, index=True)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str | None] = mapped_column(ForeignKey("gateways.id"), index=True)
    protocol: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[str | None] = mapped_column(String(64))
