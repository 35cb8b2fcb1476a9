"""A CPI-linked lease for the CPI pages and API tests: L-CPI of park-a building A (unit
PA-A103, tenant 陈静), from 2025-01-01, its rent adjusted every January by the CPI of the
December before; its plan stops at 2026-01-01 until that month's figure is published."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.models import Unit
from cloud.leases import lifecycle, reference
from cloud.leases.models import CpiIndex
from cloud.leases.terms import CpiLinked, LeaseTerms
from tests.support.browser import PASSWORD, WebRig, make_rig
from tests.support.lease_scope import seed_leases

CPI_LEASE, CPI_UNIT, CPI_TENANT = "L-CPI", "PA-A103", "陈静"


def seed_cpi_lease(sessions: sessionmaker[Session]) -> None:
    """Add L-CPI (the seeded leases' staff ``m-a`` manages it)."""
    with sessions.begin() as s:
        s.add(Unit(id=CPI_UNIT, site_id="park-a", area_m2=Decimal(50), building="A", floor="1"))
        s.flush()
        reference.set_unit_profile(s, CPI_UNIT, "office", asking_cents=500_000)
        reference.add_tenant(s, "T-CHEN", CPI_TENANT, address="chen@tenants.test")
        s.flush()
        terms = LeaseTerms(
            id=CPI_LEASE,
            tenant_id="T-CHEN",
            unit_id=CPI_UNIT,
            manager_id="m-a",
            start_on=date(2025, 1, 1),
            end_on=date(2028, 1, 1),
            rent=CpiLinked(monthly_cents=500_000, cap=Decimal("0.05"), lag_months=1),
        )
        lifecycle.create_lease(s, terms, by="seed", today=date(2024, 12, 1))
        lifecycle.sign(s, CPI_LEASE, on=date(2024, 12, 1), by="seed")
        lifecycle.hand_over(s, CPI_LEASE, on=date(2025, 1, 1), by="seed")


def cpi_months_stored(sessions: sessionmaker[Session]) -> int:
    """How many months the CPI series holds."""
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(CpiIndex)) or 0


def cpi_rig(work: Path) -> WebRig:
    """A web rig with the seeded leases of tests/support/lease_scope.py and L-CPI."""
    rig = make_rig(work, months=1)
    seed_leases(rig.sessions, PASSWORD)
    seed_cpi_lease(rig.sessions)
    return rig
