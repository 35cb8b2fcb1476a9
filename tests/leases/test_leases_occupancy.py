"""Occupancy (docs/domain.md §5, one definition) on SQLite and PostgreSQL: units signed with the
first rent paid ÷ rentable units, trial stays and internal use excluded; area-weighted and
economic occupancy on the same sets."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.leases import lifecycle, payments
from cloud.leases.jobs import run_monthly_billing
from cloud.leases.models import Invoice
from cloud.leases.occupancy import occupancy
from cloud.leases.periods import BillingPeriod
from cloud.leases.terms import FreeRent
from tests.support.leases_portfolio import (
    UnitSpec,
    clock,
    running_lease,
    seed_site,
    terms,
)

START, END = date(2026, 1, 1), date(2027, 1, 1)
DAY = date(2026, 2, 15)


def test_occupancy_of_a_portfolio_with_trial_stays_and_internal_use(
    lease_db: sessionmaker[Session],
) -> None:
    units = [
        UnitSpec(f"U{n}", area=Decimal(40 + 10 * n), asking_cents=400_000 + 10_000 * n)
        for n in range(10)
    ]
    units[8] = UnitSpec("U8", area=Decimal(120), asking_cents=0, rentable=False)  # plant room
    with lease_db.begin() as s:
        seed_site(s, units, tenants=10)
        for n in range(5):  # let, first rent to be paid
            running_lease(
                s,
                terms(
                    f"L{n}", f"U{n}", f"T{n + 1}", START, END, monthly_cents=400_000 + 10_000 * n
                ),
            )
        running_lease(s, terms("L5", "U5", "T6", START, END))  # let, never pays
        running_lease(s, terms("TRIAL", "U6", "T7", START, END, kind="trial"))
        running_lease(s, terms("OWN", "U7", "T8", START, END, kind="internal", monthly_cents=1))
        running_lease(s, terms("GONE", "U9", "T10", date(2025, 6, 1), END))
        lifecycle.terminate(
            s,
            "GONE",
            on=date(2026, 2, 1),
            today=date(2026, 1, 20),
            by="m1",
            reason="moved out",
            clock=clock,
        )
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-01"))
    with lease_db.begin() as s:
        for inv in s.scalars(
            select(Invoice).where(
                Invoice.lease_id.in_(["L0", "L1", "L2", "L3", "L4", "TRIAL", "OWN", "GONE"])
            )
        ).all():
            payments.record_payment(
                s,
                inv.lease_id,
                cents=inv.total_cents,
                received_on=date(2026, 1, 5),
                ref=f"p-{inv.id}",
            )
    with lease_db() as s:
        report = occupancy(s, DAY)
    # rentable: U0–U6 and U9 (U7 internal use, U8 not rentable); occupied: U0–U4
    assert (report.rentable_units, report.occupied_units, report.unit_rate) == (
        8,
        5,
        Decimal("0.6250"),
    )
    rentable_area = sum(40 + 10 * n for n in (0, 1, 2, 3, 4, 5, 6, 9))
    occupied_area = sum(40 + 10 * n for n in range(5))
    assert (report.rentable_area_m2, report.occupied_area_m2) == (rentable_area, occupied_area)
    assert report.area_rate == (Decimal(occupied_area) / rentable_area).quantize(Decimal("0.0001"))
    rents = sum(400_000 + 10_000 * n for n in range(5))
    asking = sum(400_000 + 10_000 * n for n in (0, 1, 2, 3, 4, 5, 6, 9))
    assert (report.occupied_rent_cents, report.potential_rent_cents) == (rents, asking)
    assert report.economic_rate == (Decimal(rents) / asking).quantize(Decimal("0.0001"))


def test_a_unit_in_its_free_rent_month_occupies_but_earns_nothing(
    lease_db: sessionmaker[Session],
) -> None:
    with lease_db.begin() as s:
        seed_site(s, [UnitSpec("U0"), UnitSpec("U1")], tenants=2)
        running_lease(
            s,
            terms("L0", "U0", "T1", START, END, free_rent=[FreeRent(months=1, anchor="handover")]),
            handover_on=date(2026, 1, 20),
        )
        running_lease(s, terms("L1", "U1", "T2", START, END))
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-01"))
    run_monthly_billing(lease_db, BillingPeriod.parse("2026-02"))
    with lease_db.begin() as s:
        for inv in s.scalars(select(Invoice)).all():
            payments.record_payment(
                s, inv.lease_id, cents=inv.total_cents, received_on=date(2026, 2, 3), ref=inv.id
            )
    with lease_db() as s:
        during = occupancy(s, date(2026, 2, 10))
        after = occupancy(s, date(2026, 2, 25))
    assert (during.unit_rate, during.economic_rate) == (Decimal(1), Decimal("0.5000"))
    assert (after.unit_rate, after.economic_rate) == (Decimal(1), Decimal(1))
