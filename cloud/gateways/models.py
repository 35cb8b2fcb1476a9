"""Gateway tables: the single-use claim tokens field engineers redeem (revision 0003), each
gateway's last known status and the commands sent to it from the engineer pages (revision 0005).

Changed only through Alembic migrations. A token is stored only as the
SHA-256 of its text; the broker password it hands out is erased when the token is used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloud.registry.base import Base
from cloud.registry.models import Gateway, Site


class ClaimToken(Base):
    """A claim for one gateway of one site: what the gateway receives when it redeems it."""

    __tablename__ = "claim_tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    gateway_id: Mapped[str] = mapped_column(String(64), index=True)
    # Declared so that one flush inserts the site before the token (decision 0011).
    site: Mapped[Site] = relationship(lazy="raise")
    site_config: Mapped[str] = mapped_column(Text)
    mqtt_url: Mapped[str] = mapped_column(String(300))
    mqtt_username: Mapped[str | None] = mapped_column(String(200))
    mqtt_password: Mapped[str | None] = mapped_column(String(200))
    topic_prefix: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_kid: Mapped[str | None] = mapped_column(String(64))


class GatewayStatus(Base):
    """The latest of a gateway's state topic (online/offline) and its signed health."""

    __tablename__ = "gateway_status"

    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    # Declared so that one flush inserts the gateway before its status (decision 0011).
    gateway: Mapped[Gateway] = relationship(lazy="raise")
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
