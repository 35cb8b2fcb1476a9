"""The web application's audit log: who did what to which subject, and when.

Services write an entry in the same transaction as the change it records, so the log
never claims a change that was rolled back. Subjects are written ``kind:id``
(``run:<uuid>``, ``gateway:<id>``, ``statement:<run>/<unit>/<party>``, ``account:<name>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.staff.models import AuditEntry


@dataclass(frozen=True)
class AuditRecord:
    """One entry as shown on a page."""

    at: datetime
    actor: str
    action: str
    subject: str
    detail: str


def record(
    session: Session, *, at: datetime, actor: str, action: str, subject: str, detail: str = ""
) -> None:
    """Add an entry to the session's transaction."""
    session.add(
        AuditEntry(
            at=at, actor=actor[:100], action=action[:32], subject=subject[:200], detail=detail
        )
    )


def entries_for(session: Session, subjects: list[str], limit: int = 200) -> list[AuditRecord]:
    """Entries about any of ``subjects``, oldest first (at most ``limit``)."""
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.subject.in_(subjects))
        .order_by(AuditEntry.at, AuditEntry.id)
        .limit(limit)
    ).all()
    return [
        AuditRecord(
            r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC),
            r.actor,
            r.action,
            r.subject,
            r.detail,
        )
        for r in rows
    ]
