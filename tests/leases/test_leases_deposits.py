"""Deposit refunds on SQLite and PostgreSQL: the steps in order with their SLAs, a step idle
past its SLA flagged once, every deduction with its evidence."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases import deposits, lifecycle
from cloud.leases.deposits import Deduction
from cloud.leases.errors import DepositError, EvidenceMissing
from cloud.leases.jobs import run_daily
from cloud.leases.models import DepositSlaFlag, LeaseTask
from tests.support.leases_portfolio import (
    RecordingChannel,
    UnitSpec,
    clock,
    running_lease,
    seed_site,
    terms,
)

T = datetime(2026, 7, 1, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
EVIDENCE = {"evidence_uri": "s3://evidence/L1/wall.jpg", "evidence_sha256": "ab" * 32}


def terminated(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as s:
        seed_site(s, [UnitSpec("A101")], tenants=1)
        running_lease(
            s, terms("L1", "A101", "T1", date(2026, 1, 1), date(2027, 1, 1), monthly_cents=400_000)
        )
        lifecycle.terminate(
            s,
            "L1",
            on=date(2026, 7, 1),
            today=date(2026, 6, 15),
            by="m1",
            reason="moved out",
            clock=clock,
        )
        return deposits.request_refund(s, "L1", by="m1", at=T).id


def test_refund_goes_through_its_steps_and_settles_to_the_cent(
    lease_db: sessionmaker[Session],
) -> None:
    refund_id = terminated(lease_db)
    with lease_db.begin() as s:
        deposits.inspect_unit(
            s,
            refund_id,
            by="inspector",
            at=T + timedelta(hours=20),
            deductions=[Deduction(reason="repaint wall", cents=120_000, **EVIDENCE)],
        )
        refund = deposits.settle(s, refund_id, by="finance", at=T + timedelta(hours=40))
        assert (refund.deposit_cents, refund.deductions_cents, refund.refund_cents) == (
            800_000,
            120_000,
            680_000,
        )
        deposits.approve(s, refund_id, by="controller", at=T + timedelta(hours=50))
        refund = deposits.pay(s, refund_id, by="finance", at=T + timedelta(hours=60))
        assert refund.state == "paid"
        with pytest.raises(
            DepositError, match="is paid; only a settled refund can become approved"
        ):
            deposits.approve(s, refund_id, by="controller", at=T + timedelta(hours=70))


def test_a_deduction_without_evidence_is_refused(lease_db: sessionmaker[Session]) -> None:
    refund_id = terminated(lease_db)
    with lease_db.begin() as s:
        with pytest.raises(
            EvidenceMissing, match="'broken lock' of 30000 cents needs its evidence"
        ):
            deposits.add_deduction(
                s, refund_id, Deduction(reason="broken lock", cents=30_000), by="inspector", at=T
            )
        with pytest.raises(EvidenceMissing):
            deposits.add_deduction(
                s,
                refund_id,
                Deduction(
                    reason="broken lock",
                    cents=30_000,
                    evidence_uri="s3://x",
                    evidence_sha256="not-a-hash",
                ),
                by="inspector",
                at=T,
            )


def test_steps_happen_in_order_and_never_before_the_previous_one(
    lease_db: sessionmaker[Session],
) -> None:
    refund_id = terminated(lease_db)
    with lease_db.begin() as s:
        with pytest.raises(
            DepositError, match="is requested; only a inspected refund can become settled"
        ):
            deposits.settle(s, refund_id, by="finance", at=T + timedelta(hours=1))
        with pytest.raises(DepositError, match="is before the requested step"):
            deposits.inspect_unit(s, refund_id, by="inspector", at=T - timedelta(hours=1))


def test_a_step_idle_past_its_sla_is_flagged_once(lease_db: sessionmaker[Session]) -> None:
    refund_id = terminated(lease_db)  # requested 1 July 10:00 local; inspection SLA 24 h
    channel = RecordingChannel()
    run_daily(lease_db, date(2026, 7, 1), channels={"email": channel})  # 14 h by day's end
    with lease_db() as s:
        assert s.scalars(select(DepositSlaFlag)).all() == []
    run_daily(lease_db, date(2026, 7, 2), channels={"email": channel})  # 38 h
    run_daily(lease_db, date(2026, 7, 3), channels={"email": channel})
    with lease_db.begin() as s:
        flag = s.scalars(select(DepositSlaFlag)).one()
        assert (flag.refund_id, flag.step, flag.waited_hours, flag.sla_hours) == (
            refund_id,
            "inspection",
            38,
            24,
        )
        assert s.scalars(
            select(LeaseTask.assignee_id).where(LeaseTask.kind == "deposit_sla")
        ).all() == ["boss"]
        # inspected now: settlement has 48 h and is not flagged before they are over
        deposits.inspect_unit(s, refund_id, by="inspector", at=T + timedelta(hours=60))
    run_daily(lease_db, date(2026, 7, 4), channels={"email": channel})  # 2 h into settlement
    with lease_db() as s:
        assert len(s.scalars(select(DepositSlaFlag)).all()) == 1
    run_daily(lease_db, date(2026, 7, 6), channels={"email": channel})  # 50 h
    with lease_db() as s:
        assert [f.step for f in s.scalars(select(DepositSlaFlag))] == ["inspection", "settlement"]
    assert [m.key for m in channel.sent] == [
        f"deposit-sla:{refund_id}:inspection",
        f"deposit-sla:{refund_id}:settlement",
    ]


def test_only_a_terminated_lease_has_its_deposit_refunded(lease_db: sessionmaker[Session]) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec("A101")], tenants=1)
        running_lease(s, terms("L1", "A101", "T1", date(2026, 1, 1), date(2027, 1, 1)))
        with pytest.raises(
            DepositError, match="is active; a deposit is refunded after termination"
        ):
            deposits.request_refund(s, "L1", by="m1", at=T)
