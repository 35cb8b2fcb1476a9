"""Gateway tables: the single-use claim tokens field engineers redeem (revision 0003), each
gateway's last known status and the commands sent to it from the engineer pages (revision 0005),
replacements of a gateway's hardware awaiting an admin and the cloud's command-signing keys
(revision 0012).

Changed only through Alembic migrations. A token is stored only as the SHA-256 of its text;
the broker password it hands out is stored encrypted with a key derived from the token (so the
registry alone cannot read it) and erased when the token is used.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    false,
)
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
    #: Re-provisioning a gateway that holds a live key: asked for explicitly (revision 0012).
    replace: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: Who issued the token (staff user name, or ``cli``).
    issued_by: Mapped[str | None] = mapped_column(String(64))
    #: The admin who approved the replacement in advance; None: it waits for an admin.
    approved_by: Mapped[str | None] = mapped_column(String(64))


class GatewayReplacement(Base):
    """New hardware for a provisioned gateway: its key waits here, not in ``gateway_keys``,
    until an admin approves; approval registers it and revokes the gateway's other keys."""

    __tablename__ = "gateway_replacements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    site_id: Mapped[str] = mapped_column(String(64), index=True)
    gateway: Mapped[Gateway] = relationship(lazy="raise")
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    public_key: Mapped[str] = mapped_column(String(64))
    #: The command key the new hardware was given (it trusts that one once approved).
    command_kid: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str | None] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: ``pending``, ``approved`` or ``rejected``.
    status: Mapped[str] = mapped_column(String(16), index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CommandKey(Base):
    """A key the cloud signs gateway commands with. The newest one not retired signs; an older
    one signs for gateways that have not confirmed the newer one, until ``retires_at``."""

    __tablename__ = "command_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    #: The private key's file name in the cloud's data directory.
    key_file: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    retires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class GatewayCommandTrust(Base):
    """A command key a gateway is known to trust: handed out at provisioning, or confirmed by
    the gateway's signed answer to ``trust_cloud_key``."""

    __tablename__ = "gateway_command_trust"

    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway: Mapped[Gateway] = relationship(lazy="raise")
    confirmed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


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
