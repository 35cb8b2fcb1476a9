"""The web application's audit log: who did what to which subject, and when.

Services write an entry in the same transaction as the change it records, so the log
never claims a change that was rolled back. Subjects are written ``kind:id``
(``run:<uuid>``, ``gateway:<id>``, ``statement:<run>/<unit>/<party>``, ``account:<name>``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

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


def _plain(value: Any) -> Any:
    if isinstance(value, (date, datetime, Decimal)):
        return str(value)
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def record_change(
    session: Session,
    *,
    at: datetime,
    actor: str,
    origin: str,
    action: str,
    subject: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    note: str = "",
) -> None:
    """Add an entry for a change to a record (a lease, a payment, an offer, a policy): who
    (``actor``), from where (``origin``: ``web 127.0.0.1``, ``api …``, ``cli``), and the
    record's values before and after (None: created, or deleted). ``detail`` holds them as
    one JSON object ``{"from", "before", "after", "note"}``; dates and Decimals as strings.

    Only the fields that changed are kept, so an entry says what the change was."""
    old = dict(before or {})
    new = dict(after or {})
    if before is not None and after is not None:
        changed = {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}
        old = {k: v for k, v in old.items() if k in changed}
        new = {k: v for k, v in new.items() if k in changed}
    detail = {
        "from": origin,
        "before": old if before is not None else None,
        "after": new if after is not None else None,
        "note": note,
    }
    record(
        session,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True, default=_plain),
    )


def entries_for(
    session: Session, subjects: list[str], limit: int = 200, *, newest_first: bool = False
) -> list[AuditRecord]:
    """Entries about any of ``subjects``, oldest first (at most ``limit``: the oldest ones);
    ``newest_first``: the newest ``limit`` entries, newest first."""
    order = (
        (AuditEntry.at.desc(), AuditEntry.id.desc())
        if newest_first
        else (AuditEntry.at, AuditEntry.id)
    )
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.subject.in_(subjects)).order_by(*order).limit(limit)
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
