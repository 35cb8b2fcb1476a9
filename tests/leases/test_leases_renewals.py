"""Renewals on SQLite and PostgreSQL: reminders at their offsets and their escalation,
priority review, expiry judged on the paid-through date, auto-renewal, open-ended stays,
price suggestions inside the band and consistent across comparable units."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases import lifecycle, payments, reference, renewals
from cloud.leases.jobs import run_daily, run_monthly_billing
from cloud.leases.models import Lease, LeaseTask, RenewalReminder, RepairComplaint
from cloud.leases.occupancy import expiring_report
from cloud.leases.periods import BillingPeriod
from cloud.leases.terms import LeasePolicy
from tests.support.leases_portfolio import (
    RecordingChannel,
    UnitSpec,
    clock,
    running_lease,
    seed_site,
    terms,
)

START, END = date(2026, 1, 1), date(2027, 1, 1)
AT = datetime(2026, 10, 1, 12, tzinfo=UTC)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def around(*centres: date) -> list[date]:
    """The day before, of and after each of ``centres`` (the daily run is idempotent and
    catches up, so days in between change nothing these tests look at)."""
    return sorted({c + timedelta(days=d) for c in centres for d in (-1, 0, 1)})


def test_reminders_go_out_at_90_60_30_days_once_each(lease_db: sessionmaker[Session]) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec("A101")], tenants=1)
        running_lease(s, terms("L1", "A101", "T1", START, END))
    channel = RecordingChannel()
    sent_on: dict[int, date] = {}
    for day in around(date(2026, 10, 3), date(2026, 11, 2), date(2026, 12, 2)):
        run_daily(lease_db, day, channels={"email": channel})
        with lease_db.begin() as s:
            for r in s.scalars(select(RenewalReminder).where(RenewalReminder.kind == "reminder")):
                sent_on.setdefault(r.offset_days, r.sent_on)
            renewals.acknowledge_reminders(s, "L1", by="m1", at=AT)
    assert sent_on == {90: date(2026, 10, 3), 60: date(2026, 11, 2), 30: date(2026, 12, 2)}
    assert [m.key for m in channel.sent] == [
        "renewal:L1:reminder:90",
        "renewal:L1:reminder:60",
        "renewal:L1:reminder:30",
    ]
    assert {m.recipient for m in channel.sent} == {"m1@staff.test"}
    with lease_db() as s:
        assert s.get(Lease, "L1").status == "expiring"  # from the first offset on


def test_custom_offsets_and_a_late_lease_get_only_the_nearest_reminder(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec("A101")], tenants=1)
        reference.save_policy(s, "short", LeasePolicy(reminder_offsets_days=(45, 30, 15)))
        running_lease(
            s, terms("L1", "A101", "T1", date(2026, 10, 20), date(2026, 12, 1), policy_id="short")
        )
    channel = RecordingChannel()
    run_daily(lease_db, date(2026, 11, 5), channels={"email": channel})
    with lease_db() as s:
        got = {r.offset_days: r.outcome for r in s.scalars(select(RenewalReminder))}
    assert got == {45: "superseded", 30: "delivered"}
    assert [m.key for m in channel.sent] == ["renewal:L1:reminder:30"]


def test_unacknowledged_reminder_is_escalated_to_the_supervisor_once(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec("A101"), UnitSpec("A102")], tenants=2)
        running_lease(s, terms("L1", "A101", "T1", START, END))
        running_lease(s, terms("L2", "A102", "T2", START, END))
    channel = RecordingChannel()
    for day in days(date(2026, 10, 3), date(2026, 10, 12)):
        run_daily(lease_db, day, channels={"email": channel})
        if day == date(2026, 10, 5):
            with lease_db.begin() as s:
                renewals.acknowledge_reminders(s, "L2", by="m1", at=AT)
    escalations = [m for m in channel.sent if ":escalation:" in m.key]
    assert [(m.key, m.recipient) for m in escalations] == [
        ("renewal:L1:escalation:90", "boss@staff.test")
    ]
    with lease_db() as s:
        row = s.get(RenewalReminder, ("L1", "escalation", 90))
        assert row.sent_on == date(2026, 10, 10)  # sent 3 Oct + 7 days


def test_tenants_with_late_payments_or_open_complaints_are_reviewed_first(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec("A101"), UnitSpec("A102"), UnitSpec("A103")], tenants=3)
        for n in (1, 2, 3):
            running_lease(s, terms(f"L{n}", f"A10{n}", f"T{n}", START, END + timedelta(days=n)))
        s.add(
            RepairComplaint(
                tenant_id="T3", unit_id="A103", opened_on=date(2026, 9, 1), summary="no hot water"
            )
        )
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-09"))
    with lease_db.begin() as s:
        payments.record_payment(s, "L1", cents=500_000, received_on=date(2026, 9, 10), ref="a")
        payments.record_payment(s, "L2", cents=500_000, received_on=date(2026, 9, 25), ref="b")
        payments.record_payment(s, "L3", cents=500_000, received_on=date(2026, 9, 10), ref="c")
    channel = RecordingChannel()
    for day in days(date(2026, 10, 3), date(2026, 10, 6)):
        run_daily(lease_db, day, channels={"email": channel})
    with lease_db() as s:
        queue = renewals.review_queue(s, date(2026, 10, 6))
        tasks = {
            t.lease_id: t.note
            for t in s.scalars(select(LeaseTask).where(LeaseTask.kind == "renewal_review"))
        }
    assert [(i.lease_id, i.priority) for i in queue] == [("L2", True), ("L3", True), ("L1", False)]
    assert tasks == {
        "L2": "1 late payment(s) in the last 365 days",
        "L3": "open repair complaint(s)",
    }
    sent = {m.data["lease"]: m for m in channel.sent}
    # the manager reads Chinese (the default language of staff)
    assert sent["L2"].subject.startswith("【优先】") and not sent["L1"].subject.startswith("【")
    assert "优先复核：近 365 天逾期付款 1 次。" in sent["L2"].body


def test_quarterly_payer_is_not_flagged_expired_before_the_paid_through_date(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec("A101"), UnitSpec("A102")], tenants=2)
        running_lease(
            s, terms("Q", "A101", "T1", date(2025, 4, 1), date(2026, 4, 1), cycle_months=3)
        )
        running_lease(s, terms("M", "A102", "T2", date(2025, 4, 1), date(2026, 4, 1)))
        payments.record_payment(s, "Q", cents=1_500_000, received_on=date(2026, 3, 5), ref="q")
        payments.record_payment(s, "M", cents=500_000, received_on=date(2026, 3, 5), ref="m")
    for day in [*around(date(2026, 1, 1), date(2026, 4, 1)), date(2026, 4, 10)]:
        run_daily(lease_db, day, channels={})
    with lease_db() as s:
        assert payments.paid_through(s, s.get(Lease, "Q")) == date(2026, 6, 5)
        assert (s.get(Lease, "Q").status, s.get(Lease, "M").status) == ("expiring", "open_ended")
        risks = {r.lease_id: (r.risk, r.expiry) for r in expiring_report(s, date(2026, 4, 10))}
    # M paid a month on 5 March: expired on 5 April; Q paid a quarter: expires on 5 June
    assert risks == {"M": ("high", date(2026, 4, 5))}
    for day in around(date(2026, 6, 5)):
        run_daily(lease_db, day, channels={})
        with lease_db() as s:
            expected = "open_ended" if day >= date(2026, 6, 5) else "expiring"
            assert s.get(Lease, "Q").status == expected
    with lease_db() as s:
        assert s.get(Lease, "Q").status == "open_ended"


def test_expiring_report_tiers(lease_db: sessionmaker[Session]) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec(f"A{n}") for n in range(4)], tenants=4)
        for n, end in enumerate(
            [date(2026, 5, 30), date(2026, 6, 5), date(2026, 6, 25), date(2026, 8, 1)]
        ):
            running_lease(s, terms(f"L{n}", f"A{n}", f"T{n + 1}", START, end))
    with lease_db() as s:
        report = [(r.lease_id, r.risk, r.days_left) for r in expiring_report(s, date(2026, 6, 1))]
    assert report == [("L0", "high", -2), ("L1", "medium", 4), ("L2", "low", 24)]


def test_auto_renewal_needs_the_clause_and_a_covering_payment_within_30_days(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec(f"A{n}") for n in range(3)], tenants=3)
        running_lease(s, terms("PAID", "A0", "T1", START, END, auto_renew=True))
        running_lease(s, terms("EARLY", "A1", "T2", START, END, auto_renew=True))
        running_lease(s, terms("NOCLAUSE", "A2", "T3", START, END))
        payments.record_payment(s, "PAID", cents=500_000, received_on=date(2026, 12, 10), ref="p")
        payments.record_payment(s, "EARLY", cents=500_000, received_on=date(2026, 11, 20), ref="e")
        payments.record_payment(
            s, "NOCLAUSE", cents=500_000, received_on=date(2026, 12, 10), ref="n"
        )
    reports = [
        run_daily(lease_db, day, channels={})
        for day in [*around(date(2026, 10, 3), END), date(2027, 2, 1)]
    ]
    renewed = [lease for r in reports for lease in r.expiries.auto_renewed]
    assert renewed == ["PAID"]
    with lease_db() as s:
        successor = s.get(Lease, "PAID~r1")
        assert (successor.status, successor.start_on, successor.rent_from) == ("active", END, END)
        # the others run on: open-ended once their paid-through date has passed too
        assert s.get(Lease, "EARLY").status == "open_ended"
        assert s.get(Lease, "NOCLAUSE").status == "open_ended"


def test_suggested_prices_are_consistent_inside_the_band_and_breaks_are_flagged(
    lease_db: sessionmaker[Session],
) -> None:
    units = [
        UnitSpec(f"A{n}", building="A", unit_type="1BR", area=Decimal(50)) for n in range(4)
    ] + [UnitSpec("B0", building="B", unit_type="1BR", area=Decimal(50))]
    rents = {"A0": 500_000, "A1": 500_000, "A2": 460_000, "A3": 540_000, "B0": 400_000}
    with lease_db.begin() as s:
        seed_site(s, units, tenants=5)
        for n, (unit, rent) in enumerate(rents.items()):
            running_lease(s, terms(f"L-{unit}", unit, f"T{n + 1}", START, END, monthly_cents=rent))
    with lease_db.begin() as s:
        got = renewals.suggest_prices(s, date(2026, 10, 1))
        # building A median 500000 per 50 m² → target +4 %: 520000, clamped into +3 … +5 %
        assert {k: v.suggested_cents for k, v in got.items()} == {
            "L-A0": 520_000,
            "L-A1": 520_000,
            "L-A2": 483_000,
            "L-A3": 556_200,
            "L-B0": 416_000,
        }
        for v in got.values():
            assert v.band_low_cents <= v.suggested_cents <= v.band_high_cents
        gap_before = 540_000 / 460_000 - 1
        gap_after = got["L-A3"].suggested_cents / got["L-A2"].suggested_cents - 1
        assert gap_after < gap_before
        ok = renewals.make_offer(s, "L-A0", 520_000, by="m1", today=date(2026, 10, 1), at=AT)
        high = renewals.make_offer(s, "L-A1", 560_000, by="m1", today=date(2026, 10, 1), at=AT)
        assert not ok.flagged and high.flagged
        assert high.flag_reason == (
            "offered 5600.00 is outside the band 5150.00 … 5250.00 "
            "(current 5000.00, suggested 5200.00)"
        )
        lifecycle.mark_expiring(
            s, lifecycle.get_lease(s, "L-A0"), today=date(2026, 10, 3), clock=clock
        )
        successor = renewals.accept_offer(s, ok.id, by="m1", today=date(2026, 10, 3))
        assert successor.schedule["rent"]["monthly_cents"] == 520_000
