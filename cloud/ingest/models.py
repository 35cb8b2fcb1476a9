"""The ingest ledger: the bounded duplicate filter (one row per gateway key) and dead letters.

Changed only through Alembic migrations (revisions 0001, 0014).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.registry.base import Base


class IngestStream(Base):
    """The seqs seen of one gateway key: all below ``floor`` plus ``ranges`` (JSON list of
    [first, last, started UNIX s]); see :mod:`cloud.ingest.dedupe`. ``version`` rises with
    every update (optimistic concurrency between workers)."""

    __tablename__ = "ingest_streams"

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    floor: Mapped[int] = mapped_column(BigInteger)
    ranges: Mapped[str] = mapped_column(Text)
    closed: Mapped[int] = mapped_column(BigInteger, default=0)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class DeadLetter(Base):
    """A message ingest refused, kept with the reason; never turned into readings.

    ``gateway_id`` is the gateway the topic names (unverified: a topic is not signed), for
    the per-gateway quota; ``size`` is the payload's length in bytes as kept (0 when the
    quota let only the row be kept); ``digest`` (SHA-256 hex of topic and payload) keeps one
    letter per distinct message, however often it is delivered or replayed."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    topic: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    gateway_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    digest: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
