"""A lease's rent plan in the registry: compiled from its terms when the lease is handed
over or renewed, extended when the CPI an adjustment needs is published."""

from __future__ import annotations

from pydantic import TypeAdapter
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloud.leases.models import Lease, RentStepRow
from cloud.leases.reference import cpi_series
from cloud.leases.schedule import CpiSeries, RentPlan, RentStep, compile_plan
from cloud.leases.terms import FreeRent, RentSchedule

_RENT = TypeAdapter(RentSchedule)
_FREE = TypeAdapter(list[FreeRent])


def schedule_doc(rent: RentSchedule, free_rent: list[FreeRent]) -> dict[str, object]:
    """The JSON a lease keeps of its agreed schedule."""
    return {
        "rent": _RENT.dump_python(rent, mode="json", by_alias=True),
        "free_rent": _FREE.dump_python(free_rent, mode="json"),
    }


def schedule_of(lease: Lease) -> tuple[RentSchedule, list[FreeRent]]:
    """The agreed rent schedule and free-rent windows of a lease."""
    return (
        _RENT.validate_python(lease.schedule["rent"]),
        _FREE.validate_python(lease.schedule.get("free_rent", [])),
    )


def plan_for(lease: Lease, cpi: CpiSeries) -> RentPlan:
    """Compile the lease's plan (the handover anchors handover-based free rent)."""
    rent, free = schedule_of(lease)
    return compile_plan(
        rent,
        free,
        start=lease.start_on,
        end=lease.end_on,
        signed_on=lease.signed_on,
        handover_on=lease.handover_on,
        cpi=cpi,
    )


def store_plan(session: Session, lease: Lease, cpi: CpiSeries | None = None) -> RentPlan:
    """(Re)compile the lease's plan and replace its stored steps."""
    plan = plan_for(lease, cpi_series(session) if cpi is None else cpi)
    session.execute(delete(RentStepRow).where(RentStepRow.lease_id == lease.id))
    session.add_all(
        RentStepRow(
            lease_id=lease.id,
            starts_on=s.starts_on,
            monthly_cents=s.monthly_cents,
            free=s.free,
            source=s.source,
        )
        for s in plan.steps
    )
    lease.plan_known_until = plan.known_until
    session.flush()
    return plan


def stored_steps(session: Session, lease_id: str) -> list[RentStep]:
    """The lease's stored plan, in date order."""
    rows = session.scalars(
        select(RentStepRow).where(RentStepRow.lease_id == lease_id).order_by(RentStepRow.starts_on)
    )
    return [RentStep(r.starts_on, r.monthly_cents, r.free, r.source) for r in rows]
