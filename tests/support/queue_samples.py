"""Records of the work queue and renewal offers for the authorization matrix: a staff record
of the same id as the manager account ``mgr-a`` (linked by default), an open task on lease
L-A1 (park-a, building A) assigned to it, and an offer on L-A2 (building A) outside its band,
made by ``seed``, waiting for approval. Seeded with the lease services."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.orm import Session, sessionmaker

from cloud.leases import reference, renewals
from cloud.leases.models import LeaseTask

#: routes acting on the sample task (in building A of park-a)
QUEUE_ITEM = {"api_queue_ack", "api_queue_done", "queue_ack_form", "queue_done_form"}
#: routes acting on lease L-A1 or on the sample offer (both in building A of park-a)
OFFER_RECORD = {
    "api_offer_suggestion",
    "api_offer_make",
    "offer_form",
    "api_offer_approve",
    "api_offer_reject",
    "api_offer_invite",
    "api_offer_negotiate",
    "api_offer_sign",
    "api_offer_lose",
    "offer_move_form",
    "offer_decide_form",
}
#: who has the sample task (assigned to mgr-a's staff record) in their queue: its assignee
#: and the overseers of its building; to anybody else it is not found
QUEUE_ITEM_HOLDERS = {"admin", "mgr-a", "sup-a"}
#: valid request bodies; L-A1 owes more than blocks a renewal, so an offer on it is refused
#: (409) past the policy and the scope
QUEUE_BODIES: dict[str, dict[str, dict[str, str]]] = {
    "api_offer_make": {"json": {"rent_cny": "5100.00"}},
    "offer_form": {"data": {"rent_cny": "5100.00"}},
    "offer_move_form": {"data": {"action": "invite"}},
    "offer_decide_form": {"data": {"action": "approve"}},
}


def seed_queue_samples(sessions: sessionmaker[Session]) -> tuple[str, int]:
    """(the task's item id, the offer's id)."""
    today = datetime.now(UTC).date()
    with sessions.begin() as s:
        reference.add_staff(s, "mgr-a", "陈管家", address="mgr-a@staff.test", supervisor_id="boss")
        s.flush()
        task = LeaseTask(
            key="matrix:L-A1",
            kind="collections",
            lease_id="L-A1",
            assignee_id="mgr-a",
            opened_on=date(2026, 2, 14),
            due_on=date(2026, 2, 21),
            note="call the tenant about the February invoice",
        )
        s.add(task)
        s.flush()
        suggestion = renewals.suggest_prices(s, today, ["L-A2"])["L-A2"]
        offer = renewals.make_offer(
            s,
            "L-A2",
            suggestion.band_high_cents + 100_000,
            by="seed",
            today=today,
            at=datetime.now(UTC),
        )
        return f"task:{task.id}", offer.id
