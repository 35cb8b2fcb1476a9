"""Registry table of provisioning: the single-use claim tokens field engineers redeem.

Changed only through Alembic migrations (revision 0003). A token is stored only as the
SHA-256 of its text; the broker password it hands out is erased when the token is used.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.registry.models import Base


class ClaimToken(Base):
    """A claim for one gateway of one site: what the gateway receives when it redeems it."""

    __tablename__ = "claim_tokens"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    gateway_id: Mapped[str] = mapped_column(String(64), index=True)
    site_config: Mapped[str] = mapped_column(Text)
    mqtt_url: Mapped[str] = mapped_column(String(300))
    mqtt_username: Mapped[str | None] = mapped_column(String(200))
    mqtt_password: Mapped[str | None] = mapped_column(String(200))
    topic_prefix: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_kid: Mapped[str | None] = mapped_column(String(64))
