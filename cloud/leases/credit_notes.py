"""Credit notes with four-eyes approval (decision 0033).

A credit note (amount [cents], reason) on a lease's billing account is requested by a
manager (their buildings), finance, a supervisor or an admin; approved or rejected by finance,
a supervisor or an admin who is not the requester. Approved, it becomes a ``credit_entries``
row (kind ``credit_note``) that the next billing run applies as a credit line; rejected, it
changes nothing. Each step is in the audit log (subject ``lease:<account>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from cloud.apportion.models import Unit
from cloud.leases.errors import AlreadyDecided, CreditNoteError, FourEyes, UnknownRecord
from cloud.leases.models import CreditEntry, CreditNote, Lease
from cloud.leases.payments import account_of
from cloud.leases.roster import ScopedDesk, scope_condition
from cloud.staff.accounts import Principal, Role
from cloud.staff.audit import record_change

REQUESTED, APPROVED, REJECTED = "requested", "approved", "rejected"
STATUSES = (REQUESTED, APPROVED, REJECTED)
#: Who decides credit notes.
APPROVER_ROLES = frozenset({Role.ADMIN, Role.FINANCE, Role.SUPERVISOR})
#: Who requests them.
REQUESTER_ROLES = frozenset({Role.ADMIN, Role.FINANCE, Role.MANAGER, Role.SUPERVISOR})
#: The largest credit note [cents] (1,000,000.00 yuan).
MAX_CENTS = 100_000_000
MAX_REASON = 500


@dataclass(frozen=True)
class CreditNoteRow:
    """A credit note: the billing account, amount [cents], reason, state and who did what."""

    id: int
    lease_id: str
    cents: int
    reason: str
    status: str
    requested_at: datetime
    requested_by: str
    decided_at: datetime | None
    decided_by: str | None
    decision_note: str

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _row(n: CreditNote) -> CreditNoteRow:
    return CreditNoteRow(
        n.id,
        n.lease_id,
        n.cents,
        n.reason,
        n.status,
        n.requested_at,
        n.requested_by,
        n.decided_at,
        n.decided_by,
        n.decision_note,
    )


def _values(n: CreditNote) -> dict[str, Any]:
    return {
        "credit_note": n.id,
        "cents": n.cents,
        "reason": n.reason,
        "status": n.status,
        "decided_by": n.decided_by,
        "decision_note": n.decision_note,
    }


class CreditNoteService(ScopedDesk):
    """Requests, lists and decides credit notes within a staff member's scope."""

    def request(self, who: Principal, lease_id: str, cents: int, reason: str) -> CreditNoteRow:
        """Request a credit note of ``cents`` on ``lease_id``'s billing account. UnknownRecord
        for a lease the caller does not see; FourEyes for a role that does not request;
        CreditNoteError for an amount or reason out of bounds."""
        if who.role not in REQUESTER_ROLES:
            raise FourEyes(f"the {who.role.value} role does not request credit notes")
        reason = reason.strip()
        if not 0 < cents <= MAX_CENTS:
            raise CreditNoteError(f"amount: expected 0.01 to {MAX_CENTS // 100}.00 yuan")
        if not 1 <= len(reason) <= MAX_REASON:
            raise CreditNoteError(f"reason: expected 1 to {MAX_REASON} characters")
        self.roster.lease(who, lease_id)
        with self.sessions.begin() as session:
            account = account_of(session, lease_id).id
            note = CreditNote(
                lease_id=account,
                cents=cents,
                reason=reason,
                status=REQUESTED,
                requested_at=self.clock(),
                requested_by=who.username,
                decision_note="",
            )
            session.add(note)
            session.flush()
            record_change(
                session,
                at=self.clock(),
                actor=who.username,
                origin=who.origin,
                action="credit_note",
                subject=f"lease:{account}",
                before=None,
                after=_values(note),
                note="credit note requested",
            )
            return _row(note)

    def notes(
        self, who: Principal, *, status: str | None = None, limit: int = 500
    ) -> list[CreditNoteRow]:
        """Credit notes of the leases the caller sees, newest first."""
        query = (
            select(CreditNote)
            .join(Lease, Lease.id == CreditNote.lease_id)
            .join(Unit, Unit.id == Lease.unit_id)
            .order_by(CreditNote.requested_at.desc(), CreditNote.id.desc())
            .limit(min(max(limit, 1), 1000))
        )
        if status is not None:
            query = query.where(CreditNote.status == status)
        scope = scope_condition(who)
        if scope is not None:
            query = query.where(scope)
        with self.sessions() as session:
            return [_row(n) for n in session.scalars(query)]

    def decide(
        self, who: Principal, note_id: int, *, approve: bool, note: str = ""
    ) -> CreditNoteRow:
        """Approve (credit booked on the account today) or reject a requested credit note.
        UnknownRecord when the caller does not see it; FourEyes for the requester or a role
        that does not approve; AlreadyDecided when it is decided already."""
        if who.role not in APPROVER_ROLES:
            raise FourEyes(
                f"the {who.role.value} role does not approve credit notes: finance, "
                "supervisors and admins do"
            )
        note = note.strip()
        if len(note) > MAX_REASON:
            raise CreditNoteError(f"note: expected at most {MAX_REASON} characters")
        with self.sessions.begin() as session:
            found = session.scalars(
                select(CreditNote).where(CreditNote.id == note_id).with_for_update()
            ).first()
            if found is None or found.lease_id not in {
                r.id for r in self.roster.leases(who, lease_id=found.lease_id, limit=1)
            }:
                raise UnknownRecord(f"no credit note {note_id} on a lease you see")
            if found.status != REQUESTED:
                raise AlreadyDecided(
                    f"credit note {note_id} is {found.status} by {found.decided_by} already"
                )
            if found.requested_by == who.username:
                raise FourEyes(
                    f"credit note {note_id} was requested by you: another person decides it"
                )
            before = _values(found)
            found.status = APPROVED if approve else REJECTED
            found.decided_at, found.decided_by, found.decision_note = (
                self.clock(),
                who.username,
                note,
            )
            if approve:
                session.add(
                    CreditEntry(
                        lease_id=found.lease_id,
                        booked_on=self.today(),
                        kind="credit_note",
                        ref=f"credit-note:{found.id}",
                        cents=found.cents,
                    )
                )
            record_change(
                session,
                at=self.clock(),
                actor=who.username,
                origin=who.origin,
                action="credit_note",
                subject=f"lease:{found.lease_id}",
                before=before,
                after=_values(found),
                note=f"credit note {found.id} {found.status}",
            )
            session.flush()
            return _row(found)
