"""Records of the work queue and renewal offers for the authorization matrix: a staff record
of the same id as the manager account ``mgr-a`` (linked by default), an open task on lease
L-A1 (park-a, building A) assigned to it, and an offer on L-A2 (building A) outside its band,
made by ``seed``, waiting for approval. Seeded with the lease services."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.orm import Session, sessionmaker

from cloud.leases import reference, renewals
from cloud.leases.models import LeaseTask


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
