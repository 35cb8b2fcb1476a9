"""Records the authorization matrix acts on for the bank and credit-note routes: requests on
them get past the policy and the scope and are then refused (422, 409), so that no caller's
request moves money."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from cloud.leases.credit_notes import CreditNoteService
from cloud.leases.errors import UnknownRecord
from cloud.leases.models import BankLine
from cloud.staff.accounts import Principal, Role

#: the bank and credit-note routes that act on a lease (the matrix's L-A1: park-a, building A)
ON_LEASE = frozenset(
    {
        "api_bank_line_assign",
        "bank_assign_form",
        "api_credit_note_request",
        "credit_note_request_form",
    }
)


def old_bank_line(sessions: sessionmaker[Session]) -> int:
    """An unmatched bank line of 400 days ago: assigning it is refused (a payment's day is
    within the last year); the first dismissal takes it, every later one is a 409."""
    with sessions.begin() as s:
        line = BankLine(
            key=f"serial:MATRIX-{uuid.uuid4().hex}",
            statement="0" * 64,
            row=2,
            booked_on=(datetime.now(UTC) - timedelta(days=400)).date(),
            cents=100,
            payer="matrix",
            payer_account="",
            reference="",
            serial="",
            status="unmatched",
            matched_by="",
            candidates=[],
            note="",
            imported_at=datetime.now(UTC),
            imported_by="admin",
        )
        s.add(line)
        s.flush()
        return line.id


def decided_credit_note(sessions: sessionmaker[Session], lease_id: str = "L-A1") -> int:
    """A credit note of 1.00 on ``lease_id``, requested and rejected by accounts that are
    none of the callers: deciding it again is a 409, no credit moves. Without the lease (a
    registry without leases) an id that does not exist."""
    service = CreditNoteService(sessions)
    try:
        who = Principal("matrix-requester", Role.ADMIN, frozenset(), origin="test")
        note = service.request(who, lease_id, 100, "matrix").id
    except UnknownRecord:
        return 999_999
    checker = Principal("matrix-checker", Role.ADMIN, frozenset(), origin="test")
    return service.decide(checker, note, approve=False).id
