"""Occupancy (docs/domain.md §5, one definition) and the monthly expiring report.

Occupancy on a day:
- rentable units: units whose profile says rentable (a unit without profile is), less
  those in internal use that day (a lease of kind ``internal``);
- occupied units: rentable units with a ``standard`` lease — signed, rent due from on or
  before the day and not ended — whose first rent is paid (a fully paid invoice carries its
  rent). Trial stays are leases too but never occupy; their units stay rentable.
- unit rate = occupied ÷ rentable; area rate = occupied m² ÷ rentable m²; economic rate =
  Σ monthly rent in force that day of the occupying leases (0 on free-rent days) ÷ Σ
  asking rent of the rentable units [cents per month].

Expiring report: running leases by their expiry (the later of the contract end and the
paid-through date): already expired — high risk; within 7 days — medium; within 30 days —
low.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.lifecycle import RUNNING
from cloud.leases.models import Lease, RentStepRow, Tenant, UnitProfile
from cloud.leases.payments import first_rent_paid
from cloud.leases.renewals import effective_expiry
from cloud.leases.schedule import RentStep

SIGNED_OR_LATER = ("signed", "active", "expiring", "open_ended", "renewed", "terminated")


class OccupancyReport(BaseModel):
    """Occupancy on ``day``: units, area [m²] and rent [cents per month], with the rates."""

    day: date
    rentable_units: int
    occupied_units: int
    unit_rate: Decimal
    rentable_area_m2: Decimal
    occupied_area_m2: Decimal
    area_rate: Decimal
    potential_rent_cents: int
    occupied_rent_cents: int
    economic_rate: Decimal


def _rate(part: Decimal | int, whole: Decimal | int) -> Decimal:
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")) if whole else Decimal(0)


class UnitOccupancy(BaseModel):
    """One unit on a day under the one definition: where it is (site, building, property
    type), whether it counts as rentable and as occupied, its area [m²], asking rent and the
    rent in force of its occupying lease [cents per month; 0 when not occupied or free]."""

    unit_id: str
    site_id: str
    building: str
    property_type: str
    rentable: bool
    occupied: bool
    area_m2: Decimal
    asking_cents: int
    earning_cents: int


def unit_occupancy(
    session: Session,
    day: date,
    *,
    site_id: str | None = None,
    units: Select[Any] | None = None,
) -> list[UnitOccupancy]:
    """Every unit (of ``site_id``, of the ``units`` subquery of unit ids, when given) on
    ``day`` with the module doc's rule applied: a handful of set-based queries, no query per
    unit or lease. :func:`occupancy` and the reports (:mod:`cloud.leases.reports`) sum these."""
    q = select(
        Unit.id,
        Unit.area_m2,
        UnitProfile.rentable,
        UnitProfile.asking_cents,
        Unit.site_id,
        Unit.building,
        UnitProfile.property_type,
    ).outerjoin(UnitProfile, UnitProfile.unit_id == Unit.id)
    ids = select(Unit.id)
    if site_id is not None:
        q, ids = q.where(Unit.site_id == site_id), ids.where(Unit.site_id == site_id)
    if units is not None:
        q, ids = q.where(Unit.id.in_(units)), ids.where(Unit.id.in_(units))
    found = {row[0]: row for row in session.execute(q)}
    covering = session.execute(
        select(Lease.id, Lease.unit_id, Lease.kind).where(
            Lease.unit_id.in_(ids),
            Lease.status.in_(SIGNED_OR_LATER),
            Lease.rent_from.is_not(None),
            Lease.rent_from <= day,
            (Lease.ended_on.is_(None)) | (Lease.ended_on > day),
        )
    ).all()
    internal = {u for _, u, k in covering if k == "internal"}
    rentable = {u for u, row in found.items() if row[2] is not False and u not in internal}
    standard = {
        lease: unit for lease, unit, kind in covering if kind == "standard" and unit in rentable
    }
    paid = first_rent_paid(session, list(standard))
    occupying = {lease: unit for lease, unit in standard.items() if lease in paid}
    steps: dict[str, list[RentStep]] = defaultdict(list)
    for lease_id, starts_on, cents, free in session.execute(
        select(
            RentStepRow.lease_id, RentStepRow.starts_on, RentStepRow.monthly_cents, RentStepRow.free
        )
        .where(RentStepRow.lease_id.in_(list(occupying)), RentStepRow.starts_on <= day)
        .order_by(RentStepRow.lease_id, RentStepRow.starts_on)
    ):
        steps[lease_id].append(RentStep(starts_on, cents, free))
    earning: dict[str, int] = defaultdict(int)
    for lease_id, unit in occupying.items():
        s = steps.get(lease_id)
        earning[unit] += 0 if not s or s[-1].free else s[-1].monthly_cents
    occupied = set(occupying.values())
    return [
        UnitOccupancy(
            unit_id=u,
            site_id=site,
            building=building or "",
            property_type=kind or "residential",
            rentable=u in rentable,
            occupied=u in occupied,
            area_m2=Decimal(area),
            asking_cents=int(asking or 0),
            earning_cents=earning.get(u, 0),
        )
        for u, (_, area, _ok, asking, site, building, kind) in found.items()
    ]


def summarize(day: date, units: Iterable[UnitOccupancy]) -> OccupancyReport:
    """The rates of ``units`` on ``day`` (units not rentable that day count nowhere)."""
    rentable = [u for u in units if u.rentable]
    occupied = [u for u in rentable if u.occupied]
    area = sum((u.area_m2 for u in rentable), Decimal(0))
    occupied_area = sum((u.area_m2 for u in occupied), Decimal(0))
    potential = sum(u.asking_cents for u in rentable)
    earning = sum(u.earning_cents for u in occupied)
    return OccupancyReport(
        day=day,
        rentable_units=len(rentable),
        occupied_units=len(occupied),
        unit_rate=_rate(len(occupied), len(rentable)),
        rentable_area_m2=area,
        occupied_area_m2=occupied_area,
        area_rate=_rate(occupied_area, area),
        potential_rent_cents=potential,
        occupied_rent_cents=earning,
        economic_rate=_rate(earning, potential),
    )


def occupancy(session: Session, day: date, *, site_id: str | None = None) -> OccupancyReport:
    """Unit-count, area-weighted and economic occupancy on ``day`` (see the module doc)."""
    return summarize(day, unit_occupancy(session, day, site_id=site_id))


class ExpiringRow(BaseModel):
    """A lease in the expiring report; ``days_left`` ≤ 0 means expired."""

    lease_id: str
    tenant: str
    unit_id: str
    end_on: date
    expiry: date
    days_left: int
    risk: str
    site_id: str = ""
    building: str = ""
    property_type: str = "residential"


#: The tiers of the expiring report, most urgent first.
RISKS = ("high", "medium", "low")


def expiring_report(
    session: Session, today: date, *, units: Select[Any] | None = None
) -> list[ExpiringRow]:
    """Running leases (of the ``units`` subquery of unit ids, when given) expired or expiring
    within 30 days, by risk then expiry. Only leases whose contract ends within 30 days are
    looked at (expiry is never before the end), each for its paid-through date."""
    rows = []
    names = dict(session.execute(select(Tenant.id, Tenant.name)).all())
    q = (
        select(Lease, Unit.site_id, Unit.building, UnitProfile.property_type)
        .join(Unit, Unit.id == Lease.unit_id)
        .outerjoin(UnitProfile, UnitProfile.unit_id == Unit.id)
        .where(Lease.status.in_(RUNNING), Lease.end_on <= today + timedelta(days=30))
        .order_by(Lease.id)
    )
    if units is not None:
        q = q.where(Lease.unit_id.in_(units))
    for lease, site, building, kind in session.execute(q):
        expiry = effective_expiry(session, lease)
        left = (expiry - today).days
        if left > 30:
            continue
        risk = "high" if left <= 0 else "medium" if left <= 7 else "low"
        rows.append(
            ExpiringRow(
                lease_id=lease.id,
                tenant=names.get(lease.tenant_id, ""),
                unit_id=lease.unit_id,
                end_on=lease.end_on,
                expiry=expiry,
                days_left=left,
                risk=risk,
                site_id=site,
                building=building or "",
                property_type=kind or "residential",
            )
        )
    return sorted(rows, key=lambda r: (RISKS.index(r.risk), r.expiry, r.lease_id))
