"""Payments and collections on SQLite and PostgreSQL: allocation (partial, over-payment as
credit, repeats), late fees (grace, daily rate, cap), the collections ladder step by step,
arrears that block a renewal."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases import lifecycle, payments
from cloud.leases.dunning import late_fee
from cloud.leases.errors import PaymentError, RenewalBlocked
from cloud.leases.jobs import run_daily, run_monthly_billing
from cloud.leases.models import CollectionEvent, Invoice, LeaseTask
from cloud.leases.periods import BillingPeriod
from cloud.leases.terms import LateFeePolicy
from cloud.notify.outbox import NotificationRow
from tests.support.leases_portfolio import (
    RecordingChannel,
    UnitSpec,
    clock,
    collection_steps,
    invoice_kinds,
    running_lease,
    seed_site,
    table_counts,
    terms,
)

START, END = date(2026, 1, 1), date(2027, 1, 1)
POLICY = LateFeePolicy(grace_days=5, daily_rate=Decimal("0.0005"), cap_rate=Decimal("0.10"))


def one_lease(sessions: sessionmaker[Session], monthly_cents: int = 300_000) -> None:
    with sessions.begin() as s:
        seed_site(s, [UnitSpec("A101")], tenants=1)
        running_lease(s, terms("L1", "A101", "T1", START, END, monthly_cents=monthly_cents))
    run_monthly_billing(sessions, BillingPeriod.parse("2026-01"))


def test_partial_payment_leaves_the_invoice_open(lease_db: sessionmaker[Session]) -> None:
    one_lease(lease_db)
    with lease_db.begin() as s:
        receipt = payments.record_payment(
            s, "L1", cents=100_000, received_on=date(2026, 1, 5), ref="B1"
        )
        assert receipt.allocations == (("L1/2026-01", 100_000),) and receipt.credit_cents == 0
        inv = s.get(Invoice, "L1/2026-01")
        assert (inv.paid_cents, inv.status, inv.paid_on) == (100_000, "open", None)
        payments.record_payment(s, "L1", cents=200_000, received_on=date(2026, 1, 9), ref="B2")
        assert (inv.status, inv.paid_on) == ("paid", date(2026, 1, 9))


def test_over_payment_is_carried_as_credit_and_applied_next_time(
    lease_db: sessionmaker[Session],
) -> None:
    one_lease(lease_db)
    with lease_db.begin() as s:
        receipt = payments.record_payment(
            s, "L1", cents=1_000_000, received_on=date(2026, 1, 5), ref="B1"
        )
        assert receipt.credit_cents == 700_000
        assert payments.credit_balance(s, "L1") == 700_000
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-02"))
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-03"))
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-04"))
    with lease_db() as s:
        assert invoice_kinds(s, "L1/2026-02") == {"rent": 300_000, "credit": -300_000}
        assert s.get(Invoice, "L1/2026-02").status == "paid"
        assert invoice_kinds(s, "L1/2026-03") == {"rent": 300_000, "credit": -300_000}
        assert invoice_kinds(s, "L1/2026-04") == {"rent": 300_000, "credit": -100_000}
        assert payments.credit_balance(s, "L1") == 0


def test_a_payment_imported_twice_is_recorded_once(lease_db: sessionmaker[Session]) -> None:
    one_lease(lease_db)
    with lease_db.begin() as s:
        first = payments.record_payment(
            s, "L1", cents=50_000, received_on=date(2026, 1, 5), ref="B1"
        )
        again = payments.record_payment(
            s, "L1", cents=50_000, received_on=date(2026, 1, 5), ref="B1"
        )
        assert again.duplicate and again.payment_id == first.payment_id
        assert s.get(Invoice, "L1/2026-01").paid_cents == 50_000
        with pytest.raises(
            PaymentError, match="recorded as 50000 cents on 2026-01-05, now it comes as 60000"
        ):
            payments.record_payment(s, "L1", cents=60_000, received_on=date(2026, 1, 5), ref="B1")


def test_late_fee_starts_after_the_grace_period_at_the_daily_rate() -> None:
    due = date(2026, 1, 11)
    assert late_fee(300_000, due, [], through=date(2026, 1, 17), policy=POLICY) == 0
    assert late_fee(300_000, due, [], through=date(2026, 1, 18), policy=POLICY) == 150
    # half paid on the 20th: 17–19 Jan on 300000, 20–31 Jan (12 days) on 150000
    assert (
        late_fee(
            300_000, due, [(date(2026, 1, 20), 150_000)], through=date(2026, 2, 1), policy=POLICY
        )
        == 450 + 900
    )
    # paid within the grace period: nothing
    assert (
        late_fee(
            300_000, due, [(date(2026, 1, 16), 300_000)], through=date(2026, 3, 1), policy=POLICY
        )
        == 0
    )


def test_late_fee_is_capped() -> None:
    # 300 days × 0.05 % = 15 % > 10 % cap
    assert (
        late_fee(300_000, date(2026, 1, 11), [], through=date(2026, 12, 1), policy=POLICY) == 30_000
    )


def test_late_fees_are_billed_until_the_cap_and_no_further(lease_db: sessionmaker[Session]) -> None:
    one_lease(lease_db)
    fees = []
    for month in range(2, 13):
        run_monthly_billing(lease_db, BillingPeriod.parse(f"2026-{month:02d}"))
        with lease_db() as s:
            fees.append(s.get(Invoice, "L1/2026-01").fee_billed_cents)
    # January's 300000 stays unpaid: fees accrue 150 a day from 17 January up to 30000
    assert fees[0] == 150 * 15 and fees[-1] == 30_000 and fees[-2] == 30_000
    assert fees == sorted(fees)


def test_each_collections_step_happens_on_its_day(lease_db: sessionmaker[Session]) -> None:
    one_lease(lease_db)  # due 2026-01-11, never paid
    channel = RecordingChannel()
    seen: dict[int, date] = {}
    for offset in range(0, 17):
        day = date(2026, 1, 11) + timedelta(days=offset)
        run_daily(lease_db, day, channels={"email": channel})
        with lease_db() as s:
            for step, happened in collection_steps(s, "L1/2026-01").items():
                seen.setdefault(step, happened)
    assert seen == {
        1: date(2026, 1, 12),
        3: date(2026, 1, 14),
        7: date(2026, 1, 18),
        15: date(2026, 1, 26),
    }
    with lease_db() as s:
        events = {e.step: e for e in s.scalars(select(CollectionEvent))}
        assert {k: (e.action, e.channel, e.recipient, e.outcome) for k, e in events.items()} == {
            1: ("reminder", "email", "t1@tenants.test", "delivered"),
            3: ("internal_task", "task", "m1", "task_opened"),
            7: ("call_task", "task", "m1", "task_opened"),
            15: ("legal_handover", "email", "boss@staff.test", "delivered"),
        }
        tasks = {t.kind: t.assignee_id for t in s.scalars(select(LeaseTask))}
        assert tasks == {"collections": "m1", "call": "m1", "legal_case": "boss"}
    assert [m.recipient for m in channel.sent] == ["t1@tenants.test", "boss@staff.test"]


def test_a_paid_invoice_climbs_no_further(lease_db: sessionmaker[Session]) -> None:
    one_lease(lease_db)
    for offset in range(1, 5):
        run_daily(lease_db, date(2026, 1, 11) + timedelta(days=offset), channels={})
    with lease_db.begin() as s:
        payments.record_payment(s, "L1", cents=300_000, received_on=date(2026, 1, 15), ref="B")
    for offset in range(5, 20):
        run_daily(lease_db, date(2026, 1, 11) + timedelta(days=offset), channels={})
    with lease_db() as s:
        assert sorted(collection_steps(s, "L1/2026-01")) == [1, 3]


def test_a_second_daily_run_of_the_same_day_changes_nothing(
    lease_db: sessionmaker[Session],
) -> None:
    one_lease(lease_db)
    channel = RecordingChannel()
    first = run_daily(lease_db, date(2026, 1, 27), channels={"email": channel})
    with lease_db() as s:
        before = table_counts(s)
    second = run_daily(lease_db, date(2026, 1, 27), channels={"email": channel})
    with lease_db() as s:
        assert table_counts(s) == before
        assert {r.status for r in s.scalars(select(NotificationRow))} == {"delivered"}
    assert first.changed_anything and not second.changed_anything
    assert len(channel.sent) == 2


def test_arrears_above_the_threshold_block_renewal(lease_db: sessionmaker[Session]) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec("A101")], tenants=1)
        running_lease(s, terms("L1", "A101", "T1", START, END, monthly_cents=300_000))
        lifecycle.mark_expiring(
            s, lifecycle.get_lease(s, "L1"), today=date(2026, 10, 3), clock=clock
        )
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-11"))
    with lease_db.begin() as s:  # default threshold 100000 cents
        payments.record_payment(s, "L1", cents=200_000, received_on=date(2026, 11, 3), ref="B")
        assert payments.arrears(s, "L1", date(2026, 12, 1)) == 100_000
    with lease_db.begin() as s:
        lifecycle.renew(
            s, "L1", monthly_cents=None, today=date(2026, 12, 1), by="m1", clock=clock
        )  # exactly at the threshold: allowed
        s.rollback()
    with lease_db.begin() as s:
        payments.record_payment(s, "L1", cents=1, received_on=date(2026, 11, 4), ref="refund")
    with lease_db.begin() as s:
        inv = s.get(Invoice, "L1/2026-11")
        inv.paid_cents -= 2  # (only to put the arrears one cent above the threshold)
    with (
        lease_db.begin() as s,
        pytest.raises(RenewalBlocked, match="arrears 100001 cents are above the 100000"),
    ):
        lifecycle.renew(s, "L1", monthly_cents=None, today=date(2026, 12, 1), by="m1", clock=clock)
