"""The lease state machine on SQLite and PostgreSQL: each transition, each illegal one, the
audit, the guard on direct status changes, and the event rules of handover, renewal and
termination."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.models import OccupancySegment, TreeNode
from cloud.leases import lifecycle
from cloud.leases.billing import run_billing
from cloud.leases.errors import IllegalTransition, TermsError
from cloud.leases.models import ALLOWED, CreditEntry, Lease, LeaseStatus, LeaseTransition
from cloud.leases.periods import BillingPeriod
from cloud.leases.utilities import PostedApportionment
from tests.support.leases_portfolio import (
    UnitSpec,
    clock,
    running_lease,
    seed_site,
    terms,
)

S = LeaseStatus
START, END = date(2026, 1, 1), date(2027, 1, 1)


def seeded(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        seed_site(s, [UnitSpec("A101"), UnitSpec("A102")], tenants=2)


def lease_in(session: Session, state: S, lease_id: str = "L1") -> Lease:
    """A lease brought to ``state`` through legal transitions only."""
    lifecycle.create_lease(
        session,
        terms(lease_id, "A101", "T1", START, END),
        by="agent",
        today=date(2025, 12, 1),
        clock=clock,
    )
    path = {
        S.DRAFT: [],
        S.SIGNED: [S.SIGNED],
        S.ACTIVE: [S.SIGNED, S.ACTIVE],
        S.EXPIRING: [S.SIGNED, S.ACTIVE, S.EXPIRING],
        S.OPEN_ENDED: [S.SIGNED, S.ACTIVE, S.EXPIRING, S.OPEN_ENDED],
        S.RENEWED: [S.SIGNED, S.ACTIVE, S.EXPIRING, S.RENEWED],
        S.TERMINATED: [S.SIGNED, S.ACTIVE, S.TERMINATED],
    }[state]
    for step in path:
        if step == S.SIGNED:
            lifecycle.sign(session, lease_id, on=date(2025, 12, 5), by="agent", clock=clock)
        elif step == S.ACTIVE:
            lifecycle.hand_over(session, lease_id, on=START, by="agent", clock=clock)
        elif step == S.EXPIRING:
            lifecycle.mark_expiring(
                session,
                lifecycle.get_lease(session, lease_id),
                today=date(2026, 10, 3),
                clock=clock,
            )
        elif step == S.OPEN_ENDED:
            lifecycle.mark_open_ended(
                session,
                lifecycle.get_lease(session, lease_id),
                today=date(2027, 1, 2),
                expiry=END,
                clock=clock,
            )
        elif step == S.RENEWED:
            lifecycle.renew(
                session,
                lease_id,
                monthly_cents=515_000,
                today=date(2026, 12, 1),
                by="m1",
                clock=clock,
            )
        elif step == S.TERMINATED:
            lifecycle.terminate(
                session,
                lease_id,
                on=date(2026, 6, 1),
                today=date(2026, 5, 20),
                by="m1",
                reason="moved abroad",
                clock=clock,
            )
    lease = lifecycle.get_lease(session, lease_id)
    assert lease.status == state
    return lease


def test_the_state_machine_is_the_documented_one() -> None:
    assert {a: set(b) for a, b in ALLOWED.items()} == {
        S.DRAFT: {S.SIGNED},
        S.SIGNED: {S.ACTIVE, S.TERMINATED},
        S.ACTIVE: {S.EXPIRING, S.TERMINATED},
        S.EXPIRING: {S.RENEWED, S.TERMINATED, S.OPEN_ENDED},
        S.OPEN_ENDED: {S.RENEWED, S.TERMINATED},
        S.RENEWED: set(),
        S.TERMINATED: set(),
    }


def test_each_transition_is_audited_and_each_illegal_one_refused(
    lease_db: sessionmaker[Session], subtests: pytest.Subtests
) -> None:
    """All 7 × 7 (from, to) pairs, each in its own transaction, rolled back after."""
    seeded(lease_db)
    with lease_db.begin() as s:
        for state in S:
            lease_in(s, state, f"L-{state.value}")
    for before in S:
        for after in S:
            with subtests.test(f"{before.value} → {after.value}"), lease_db() as s:
                lease = lifecycle.get_lease(s, f"L-{before.value}")
                audits = len(s.scalars(select(LeaseTransition.id)).all())
                if after in ALLOWED[before]:
                    record = lifecycle.transition(
                        s,
                        lease,
                        after,
                        by="auditor",
                        on=date(2026, 12, 20),
                        reason="test",
                        clock=clock,
                    )
                    assert (record.from_status, record.to_status, record.by, record.day) == (
                        before.value,
                        after.value,
                        "auditor",
                        date(2026, 12, 20),
                    )
                    assert record.before["status"] == before.value
                    assert record.after["status"] == after.value
                    assert len(s.scalars(select(LeaseTransition.id)).all()) == audits + 1
                else:
                    with pytest.raises(
                        IllegalTransition,
                        match=f"is {before.value}; it can become .*not {after.value}",
                    ):
                        lifecycle.transition(s, lease, after, by="x", on=START, clock=clock)
                    assert lease.status == before.value
                    assert len(s.scalars(select(LeaseTransition.id)).all()) == audits
                s.rollback()


def test_a_status_assigned_directly_is_still_guarded(lease_db: sessionmaker[Session]) -> None:
    seeded(lease_db)
    with lease_db.begin() as s:
        lease_in(s, S.DRAFT)
    with (
        lease_db() as s,
        pytest.raises(IllegalTransition, match="draft → active is not a transition"),
    ):
        s.get(Lease, "L1").status = "active"
        s.flush()


def test_termination_stops_billing_unbinds_meters_and_revokes_access(
    lease_db: sessionmaker[Session],
) -> None:
    seeded(lease_db)
    with lease_db.begin() as s:
        s.add(TreeNode(id="N-A101", site_id="S1", kind="unit", parent_id=None, unit_id="A101"))
        s.flush()
        running_lease(s, terms("L1", "A101", "T1", START, END, monthly_cents=310_000))
        assert lifecycle.has_statement_access(s, "T1", "A101", date(2026, 2, 1))
        run_billing(s, BillingPeriod.parse("2026-03"), utilities=PostedApportionment())
        record = lifecycle.terminate(
            s,
            "L1",
            on=date(2026, 3, 21),
            today=date(2026, 3, 10),
            by="m1",
            reason="early termination",
            clock=clock,
        )
        assert record.ended_on == date(2026, 3, 21)
    with lease_db.begin() as s:
        # rent billed in advance for 21 … 31 March comes back as credit: 310000 × 11/31
        credit = s.scalars(select(CreditEntry).where(CreditEntry.kind == "refund")).one()
        assert (credit.lease_id, credit.cents) == ("L1", 110_000)
        seg = s.scalars(select(OccupancySegment).where(OccupancySegment.node_id == "N-A101")).one()
        assert (seg.tenant, seg.from_, seg.to) == ("T1", START, date(2026, 3, 21))
        assert lifecycle.has_statement_access(s, "T1", "A101", date(2026, 3, 20))
        assert not lifecycle.has_statement_access(s, "T1", "A101", date(2026, 3, 21))
        audit = s.scalars(
            select(LeaseTransition).where(LeaseTransition.to_status == "terminated")
        ).one()
        assert audit.effects == [
            "billing stops on 2026-03-21; 110000 cents billed beyond it credited",
            "meters of node N-A101 unbound from T1 on 2026-03-21",
            "statement access of T1 to A101 revoked on 2026-03-21",
        ]
        report = run_billing(s, BillingPeriod.parse("2026-04"), utilities=PostedApportionment())
        # billing has stopped: no rent; only the late fee on the unpaid March invoice, which
        # the credit pays (310000 × 0.05 % × 15 days after the 5-day grace = 2325)
        assert (report.rent_cents, report.fee_cents, report.credit_cents) == (0, 2325, 2325)


def test_handover_binds_the_units_meters_and_grants_access(lease_db: sessionmaker[Session]) -> None:
    seeded(lease_db)
    with lease_db.begin() as s:
        s.add(TreeNode(id="N-A101", site_id="S1", kind="unit", parent_id=None, unit_id="A101"))
        s.flush()
        running_lease(s, terms("L1", "A101", "T1", START, END), handover_on=date(2026, 1, 5))
    with lease_db() as s:
        seg = s.scalars(select(OccupancySegment)).one()
        assert (seg.node_id, seg.tenant, seg.from_, seg.to) == (
            "N-A101",
            "T1",
            date(2026, 1, 5),
            None,
        )
        lease = s.get(Lease, "L1")
        assert (lease.handover_on, lease.rent_from) == (date(2026, 1, 5), date(2026, 1, 5))


def test_renewal_makes_a_successor_that_starts_at_the_old_end(
    lease_db: sessionmaker[Session],
) -> None:
    seeded(lease_db)
    with lease_db.begin() as s:
        lease_in(s, S.RENEWED)
    with lease_db() as s:
        old, new = s.get(Lease, "L1"), s.get(Lease, "L1~r1")
        assert old.ended_on == END
        assert (new.status, new.start_on, new.end_on, new.renewed_from_id) == (
            "signed",
            END,
            date(2028, 1, 1),
            "L1",
        )
        assert new.schedule["rent"] == {"kind": "fixed", "monthly_cents": 515_000}


def test_a_parent_with_running_children_is_not_terminated(lease_db: sessionmaker[Session]) -> None:
    seeded(lease_db)
    with lease_db.begin() as s:
        running_lease(s, terms("P", "A101", "T1", START, END))
        running_lease(s, terms("C", "A102", "T2", START, END, parent_id="P"))
        with pytest.raises(IllegalTransition, match="running sub-account leases C"):
            lifecycle.terminate(
                s,
                "P",
                on=date(2026, 6, 1),
                today=date(2026, 5, 1),
                by="m1",
                reason="company leaves",
                clock=clock,
            )
        with pytest.raises(TermsError, match="sub-accounts are one level deep"):
            lifecycle.create_lease(
                s,
                terms("G", "A102", "T2", START, END, parent_id="C"),
                by="agent",
                today=START,
                clock=clock,
            )
