"""Leases for the authorization tests of roles, building scope and field visibility: units in
two buildings of park-a and one of park-b, tenants with ID numbers, a billed month with a
partly paid invoice (arrears) and an overpaid one (credit), and the lease-operation accounts.

Seeded with the lease services (no HTTP route creates leases yet); everything the tests
check is then read through the product's pages and API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.models import Unit
from cloud.leases import lifecycle, payments, reference
from cloud.leases.jobs import run_monthly_billing
from cloud.leases.periods import BillingPeriod
from cloud.leases.terms import LeaseTerms
from cloud.staff.accounts import AccountService, Role

T0 = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)
START, END = date(2026, 1, 1), date(2027, 1, 1)
RENT = 500_000  # cents per month


@dataclass(frozen=True)
class SeededLease:
    id: str
    site: str
    building: str
    unit: str
    tenant: str
    tenant_name: str
    id_number: str


#: (lease, site, building, unit, tenant, name, ID number, paid in cents on 2026-02-05). The
#: first invoice (January and February's rent, 10,000.00 yuan) is due on 2026-02-11: L-A1
#: owes 8,000.00, L-A2 nothing, L-B1 has 200.00 credit, L-P1 owes it all.
LEASES = [
    ("L-A1", "park-a", "A", "PA-A101", "T-ZHANG", "张伟", "110105199001011234", 200_000),
    ("L-A2", "park-a", "A", "PA-A102", "T-LI", "李娜", "310101198502023456", 2 * RENT),
    ("L-B1", "park-a", "B", "PA-B201", "T-WANG", "王氏贸易公司", "91310000MA1K000001", 1_020_000),
    ("L-P1", "park-b", "A", "PB-A101", "T-ZHAO", "赵敏", "440301199203034567", 0),
]
SEEDED = [SeededLease(*row[:7]) for row in LEASES]
#: (user name, role, sites, buildings) of the lease-operation accounts
SCOPED_ACCOUNTS = [
    ("mgr-a", Role.MANAGER, [], ["park-a/A"]),
    ("mgr-ab", Role.MANAGER, [], ["park-a/B"]),
    ("sup-a", Role.SUPERVISOR, ["park-a"], []),
    ("legal-a", Role.LEGAL, ["park-a"], []),
    ("mgr-p", Role.MANAGER, [], ["park-b/A"]),
]


def _clock() -> datetime:
    return T0


def seed_leases(sessions: sessionmaker[Session], password: str) -> list[SeededLease]:
    """The units, people and leases of :data:`LEASES`, February 2026 billed and paid as
    given, and the accounts of :data:`SCOPED_ACCOUNTS`."""
    with sessions.begin() as s:
        reference.add_staff(s, "boss", "周主管", address="boss@staff.test")
        s.flush()
        reference.add_staff(s, "m-a", "陈管家", address="m-a@staff.test", supervisor_id="boss")
        s.flush()
        for lease, site, building, unit, tenant, name, idn, _paid in LEASES:
            s.add(Unit(id=unit, site_id=site, area_m2=Decimal(50), building=building, floor="1"))
            s.flush()
            reference.set_unit_profile(s, unit, "office", asking_cents=RENT)
            reference.add_tenant(s, tenant, name, address=f"{tenant}@tenants.test", id_number=idn)
            s.flush()
            terms = LeaseTerms.model_validate(
                {
                    "id": lease,
                    "tenant_id": tenant,
                    "unit_id": unit,
                    "manager_id": "m-a",
                    "start_on": START,
                    "end_on": END,
                    "rent": {"kind": "fixed", "monthly_cents": RENT},
                }
            )
            lifecycle.create_lease(s, terms, by="seed", today=date(2025, 12, 1), clock=_clock)
            lifecycle.sign(s, lease, on=date(2025, 12, 1), by="seed", clock=_clock)
            lifecycle.hand_over(s, lease, on=START, by="seed", clock=_clock)
    run_monthly_billing(sessions, BillingPeriod.parse("2026-02"), today=date(2026, 2, 1))
    with sessions.begin() as s:
        for lease, *_rest, paid in LEASES:
            if paid:
                payments.record_payment(
                    s, lease, cents=paid, received_on=date(2026, 2, 5), ref=f"BANK-{lease}"
                )
    accounts = AccountService(sessions)
    for name, role, sites, buildings in SCOPED_ACCOUNTS:
        accounts.create_account(name, password, role, sites, buildings=buildings)
    return SEEDED
