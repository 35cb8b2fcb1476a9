"""A portfolio for the lease report tests: the leases of :mod:`tests.support.lease_scope`
(park-a buildings A and B, park-b), three more park-a leases ending in June 2026 (one
expired, one within 7 days, one within 30 days of 2026-06-05), property types (retail,
parking; the rest residential), five billed months, payments on time, late, partial and
never, and the collections ladder run on the days that make its steps.

Seeded with the lease services; the tests read everything back through the API, the pages
and the commands, and check it against SQL written by hand.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.models import Unit
from cloud.leases import lifecycle, payments, reference
from cloud.leases.jobs import run_daily, run_monthly_billing
from cloud.leases.periods import BillingPeriod
from cloud.leases.terms import LeaseTerms
from tests.support.lease_scope import RENT, seed_leases

#: (lease, unit, building, tenant, end) of the leases that end in June 2026
SHORT = [
    ("L-X1", "PA-A103", "A", "T-X1", date(2026, 6, 1)),
    ("L-X2", "PA-A104", "A", "T-X2", date(2026, 6, 10)),
    ("L-X3", "PA-B202", "B", "T-X3", date(2026, 6, 30)),
]
#: property types of units (the rest stay residential)
TYPES = {"PA-B201": "retail", "PA-B202": "retail", "PB-A101": "parking"}
#: days the daily job runs: the ladder's steps of February's and March's invoices
DAILY = [
    date(2026, 2, 12),
    date(2026, 2, 14),
    date(2026, 2, 18),
    date(2026, 2, 26),
    date(2026, 3, 12),
    date(2026, 3, 14),
    date(2026, 3, 18),
    date(2026, 3, 26),
]


def _clock() -> datetime:
    return datetime(2025, 12, 1, 9, tzinfo=UTC)


def seed_report_portfolio(sessions: sessionmaker[Session], password: str) -> None:
    """Everything of the module doc, in order of the days it happens on."""
    seed_leases(sessions, password)  # February 2026 billed, paid on 2026-02-05 as it says
    with sessions.begin() as s:
        for lease, unit, building, tenant, end in SHORT:
            s.add(Unit(id=unit, site_id="park-a", area_m2=Decimal(30), building=building))
            s.flush()
            reference.set_unit_profile(s, unit, "office", asking_cents=RENT)
            reference.add_tenant(s, tenant, f"租户{tenant}", address=f"{tenant}@tenants.test")
            s.flush()
            terms = LeaseTerms.model_validate(
                {
                    "id": lease,
                    "tenant_id": tenant,
                    "unit_id": unit,
                    "manager_id": "m-a",
                    "start_on": date(2026, 3, 1),
                    "end_on": end,
                    "rent": {"kind": "fixed", "monthly_cents": RENT // 2},
                }
            )
            lifecycle.create_lease(s, terms, by="seed", today=date(2026, 2, 1), clock=_clock)
            lifecycle.sign(s, lease, on=date(2026, 2, 1), by="seed", clock=_clock)
            lifecycle.hand_over(s, lease, on=date(2026, 3, 1), by="seed", clock=_clock)
        for unit, kind in TYPES.items():
            reference.set_unit_profile(s, unit, "office", asking_cents=RENT, property_type=kind)

    def pay(lease: str, cents: int, on: date, ref: str) -> None:
        with sessions.begin() as s:
            payments.record_payment(s, lease, cents=cents, received_on=on, ref=ref)

    for day in DAILY[:2]:
        run_daily(sessions, day, channels={})
    pay("L-A1", 800_000, date(2026, 2, 16), "A1-REST")  # after the T+3 task, before T+7
    for day in DAILY[2:4]:
        run_daily(sessions, day, channels={})
    run_monthly_billing(sessions, BillingPeriod.parse("2026-03"), today=date(2026, 3, 1))
    pay("L-X1", RENT // 2, date(2026, 3, 5), "X1-MAR")  # on time: X1 occupies
    run_daily(sessions, DAILY[4], channels={})
    pay("L-A2", RENT, date(2026, 3, 13), "A2-MAR")  # after the T+1 reminder
    for day in DAILY[5:]:
        run_daily(sessions, day, channels={})
    pay("L-B1", 300_000, date(2026, 3, 20), "B1-PART")  # part of March's rent
    for month in ("2026-04", "2026-05", "2026-06"):
        run_monthly_billing(
            sessions, BillingPeriod.parse(month), today=date.fromisoformat(f"{month}-01")
        )
    pay("L-X2", RENT, date(2026, 5, 3), "X2-MAY")
