"""The notification outbox: every message a job wants sent, recorded once, delivered later.

A job records messages in its own transaction (:func:`enqueue`), keyed by a natural key
(``collections:INV:1``, ``renewal:L-001:reminder:60`` ...) under a unique constraint, so
a rerun records nothing new. :func:`deliver` then sends what is due, one message per
transaction: the row is locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers
never take the same one), sent, and marked delivered in the same commit. A failure is
retried with back-off (5 min × 2^(attempt − 1)) up to ``max_attempts``, then left
``failed`` for a person. A delivered message is never selected again; the only repeat
possible is a crash between the hand-over and the commit, and then the receiver sees the
same key (webhook delivery header, e-mail Message-ID) and can drop it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from cloud.notify.channels import Channel, Notification
from cloud.notify.errors import DeliveryError
from cloud.registry.base import Base

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
RETRY_BASE = timedelta(minutes=5)


class NotificationRow(Base):
    """A message for a channel (``email``, or a webhook gateway's name) and its delivery
    state: ``pending`` (due at ``next_attempt_at``), ``delivered`` or ``failed``."""

    __tablename__ = "notification_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    recipient: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)

    def notification(self) -> Notification:
        return Notification(self.key, self.recipient, self.subject, self.body, self.data)


def enqueue(
    session: Session, messages: Iterable[tuple[str, Notification]], *, now: datetime
) -> int:
    """Record (channel, message) pairs whose keys are new; return how many were new."""
    pending = {m.key: (channel, m) for channel, m in messages}
    if not pending:
        return 0
    known: set[str] = set()
    keys = list(pending)
    for i in range(0, len(keys), 500):
        known.update(
            session.scalars(
                select(NotificationRow.key).where(NotificationRow.key.in_(keys[i : i + 500]))
            )
        )
    at = now.astimezone(UTC)
    rows = [
        NotificationRow(
            key=m.key,
            channel=channel,
            recipient=m.recipient,
            subject=m.subject,
            body=m.body,
            data=dict(m.data),
            status=PENDING,
            attempts=0,
            created_at=at,
            next_attempt_at=at,
        )
        for key, (channel, m) in pending.items()
        if key not in known
    ]
    session.add_all(rows)
    session.flush()
    return len(rows)


@dataclass(frozen=True)
class DeliveryReport:
    """What one :func:`deliver` pass did: messages delivered, to be retried, given up."""

    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def deliver(
    sessions: sessionmaker[Session],
    channels: Mapping[str, Channel],
    *,
    now: datetime,
    max_attempts: int = 6,
    key_prefix: str | None = None,
) -> DeliveryReport:
    """Send every pending message due at ``now`` whose channel is configured (and whose key
    starts with ``key_prefix``, when given), one per transaction. Messages for channels not
    in ``channels`` wait."""
    at = now.astimezone(UTC)
    delivered = retrying = failed = 0
    names = sorted(channels)
    while names:
        with sessions.begin() as session:
            row = session.scalars(
                select(NotificationRow)
                .where(
                    NotificationRow.status == PENDING,
                    NotificationRow.next_attempt_at <= at,
                    NotificationRow.channel.in_(names),
                    *(
                        [NotificationRow.key.startswith(key_prefix, autoescape=True)]
                        if key_prefix
                        else []
                    ),
                )
                .order_by(NotificationRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                break
            row.attempts += 1
            try:
                channels[row.channel].send(row.notification())
            except DeliveryError as exc:
                row.last_error = str(exc)
                if row.attempts >= max_attempts:
                    row.status = FAILED
                    failed += 1
                else:
                    row.next_attempt_at = at + RETRY_BASE * 2 ** (row.attempts - 1)
                    retrying += 1
                continue
            row.status, row.delivered_at, row.last_error = DELIVERED, at, None
            delivered += 1
    return DeliveryReport(delivered, retrying, failed)
