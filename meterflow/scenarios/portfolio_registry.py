"""The simulated portfolio's registry rows: site, leases, ledger and engagement of the plan.

:func:`write_site` (site, units, meter tree, meters, staff), :func:`write_leases`
(tenants, leases, rent plans, occupancy), :func:`write_ledger` (invoices, payments,
collections) and :func:`write_engagement` (repair tickets, surveys, activities) write what
the hidden plan of :mod:`meterflow.scenarios.portfolio_plan` leads to, in bulk; no hidden
variable is written.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from cloud.apportion.models import MeterInstallation, OccupancySegment, TreeNode, Unit
from cloud.leases.dunning import LADDER
from cloud.leases.models import (
    CollectionEvent,
    Invoice,
    InvoiceLine,
    Lease,
    Payment,
    PaymentAllocation,
    RentStepRow,
    RepairComplaint,
    Staff,
    Tenant,
    UnitProfile,
)
from cloud.leases.money import round_half_up
from cloud.leases.periods import add_months, month_start
from cloud.leases.plans import schedule_doc
from cloud.leases.schedule import RentStep, rent_for
from cloud.leases.terms import FixedRent
from cloud.registry.models import Meter
from cloud.registry.service import ensure_site
from cloud.risk.models import TenantActivity, TenantSurvey
from meterflow.scenarios.portfolio_plan import (
    PlannedUnit,
    PortfolioSpec,
    Tenancy,
    occupied_span,
    sigmoid,
    uniform_int,
)

TICKET_CATEGORIES = {
    "electrical": ("socket without power", "breaker trips", "light fitting broken"),
    "plumbing": ("leaking tap", "blocked drain", "no hot water"),
    "hvac": ("air conditioner not cooling", "heating too weak", "noisy ventilation"),
    "general": ("door lock stuck", "window does not close", "lift out of order"),
}
TICKET_WEIGHTS = (0.25, 0.30, 0.20, 0.25)
SURVEY_MONTHS = (1, 4, 7, 10)  # the net-promoter survey on the 15th of these months


def _address(tenancy: Tenancy) -> str:
    return f"{tenancy.tenant_id.lower()}@tenants.example"


def _utc(day: date, tz: ZoneInfo, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tz).astimezone(UTC)


def _bulk(
    session: Session, model: type[Any], rows: Sequence[dict[str, Any]], batch: int = 50_000
) -> None:
    """Core executemany on the model's table (keys are column names): the ORM's bulk path
    would fetch generated keys row by row."""
    for i in range(0, len(rows), batch):
        session.execute(insert(model.__table__), list(rows[i : i + batch]))


def write_site(session: Session, spec: PortfolioSpec, units: list[PlannedUnit]) -> None:
    """The site, units [m²] and their profiles (asking rent [cents per month]), the meter
    tree (a main node, one unit node per unit), one DL/T645 meter per unit installed 13
    months before the start, a supervisor and the managers."""
    ensure_site(session, spec.site_id, f"Simulated portfolio {spec.site_id}", spec.tz)
    session.flush()
    installed = add_months(month_start(spec.start), -13)
    main = f"{spec.site_id}-main"
    _bulk(
        session,
        Unit,
        [
            {
                "id": u.id,
                "site_id": spec.site_id,
                "area_m2": Decimal(f"{u.area:.1f}"),
                "building": f"B{u.building + 1}",
                "floor": str(u.floor),
            }
            for u in units
        ],
    )
    _bulk(
        session,
        UnitProfile,
        [
            {"unit_id": u.id, "unit_type": u.unit_type, "rentable": True, "asking_cents": u.asking}
            for u in units
        ],
    )
    _bulk(
        session,
        TreeNode,
        [
            {
                "id": main,
                "site_id": spec.site_id,
                "kind": "main",
                "parent_id": None,
                "unit_id": None,
                "landlord_area_m2": None,
            }
        ],
    )
    _bulk(
        session,
        TreeNode,
        [
            {
                "id": f"N-{u.id}",
                "site_id": spec.site_id,
                "kind": "unit",
                "parent_id": main,
                "unit_id": u.id,
                "landlord_area_m2": None,
            }
            for u in units
        ],
    )
    _bulk(
        session,
        Meter,
        [
            {
                "id": f"M-{u.id}",
                "site_id": spec.site_id,
                "gateway_id": None,
                "protocol": "dlt645",
                "address": f"{n + 1:012d}",
                "parent_id": None,
            }
            for n, u in enumerate(units)
        ],
    )
    _bulk(
        session,
        MeterInstallation,
        [
            {
                "id": f"I-{u.id}",
                "meter_id": f"M-{u.id}",
                "node_id": f"N-{u.id}",
                "installed_on": installed,
                "removed_on": None,
                "capacity": None,
                "bidirectional": False,
                "replaced_by_id": None,
            }
            for u in units
        ],
    )
    _bulk(
        session,
        Staff,
        [
            {
                "id": "SUP1",
                "name": "Supervisor 1",
                "channel": "email",
                "address": "sup1@staff.example",
                "supervisor_id": None,
            }
        ],
    )
    _bulk(
        session,
        Staff,
        [
            {
                "id": f"MGR{m + 1}",
                "name": f"Manager {m + 1}",
                "channel": "email",
                "address": f"mgr{m + 1}@staff.example",
                "supervisor_id": "SUP1",
            }
            for m in range(spec.managers)
        ],
    )


def write_leases(
    session: Session, spec: PortfolioSpec, units: list[PlannedUnit], tenancies: list[Tenancy]
) -> tuple[int, int]:
    """Tenants, leases in their state at now, rent plans (one fixed step [cents per month])
    and occupancy segments (the unit node bound to the tenant until the move-out); returns
    the numbers of tenants and leases."""
    now, tz = spec.now, ZoneInfo(spec.tz)
    tenants, leases, steps, segments = [], [], [], []
    for tenancy in tenancies:
        written = tenancy.leases
        unit = units[tenancy.unit]
        tenants.append(
            {
                "id": tenancy.tenant_id,
                "name": f"Tenant {len(tenants) + 1}",
                "channel": "email",
                "address": _address(tenancy),
            }
        )
        for lease in written:
            status = lease.outcome or "active"
            leases.append(
                {
                    "id": lease.id,
                    "tenant_id": tenancy.tenant_id,
                    "unit_id": unit.id,
                    "manager_id": unit.manager,
                    "parent_id": None,
                    "renewed_from_id": lease.renewed_from,
                    "policy_id": None,
                    "kind": "standard",
                    "status": status,
                    "signed_on": lease.signed,
                    "start_on": lease.start,
                    "end_on": lease.end,
                    "handover_on": lease.start,
                    "rent_from": lease.start,
                    "ended_on": lease.end if lease.outcome else None,
                    "cycle_months": tenancy.cycle,
                    "due_days": 10,
                    "auto_renew": False,
                    "renewal_term_months": 12,
                    "deposit_cents": 2 * written[0].rent,
                    "schedule": schedule_doc(FixedRent(monthly_cents=lease.rent), []),
                    "plan_known_until": None,
                    "created_at": _utc(lease.signed, tz),
                }
            )
            steps.append(
                {
                    "lease_id": lease.id,
                    "starts_on": lease.start,
                    "monthly_cents": lease.rent,
                    "free": False,
                    "source": "base",
                }
            )
        moved = tenancy.move_out if tenancy.move_out and tenancy.move_out < now else None
        segments.append(
            {
                "node_id": f"N-{unit.id}",
                "tenant": tenancy.tenant_id,
                "from_date": written[0].start,
                "to_date": moved,
            }
        )
    _bulk(session, Tenant, tenants)
    _bulk(session, Lease, leases)
    _bulk(session, RentStepRow, steps)
    _bulk(session, OccupancySegment, segments)
    return len(tenants), len(leases)


def write_ledger(
    session: Session,
    spec: PortfolioSpec,
    units: list[PlannedUnit],
    tenancies: list[Tenancy],
    rng: random.Random,
) -> int:
    """Invoices issued in [start, now) with their rent line, payment and allocation, and
    the collections steps each reached while unpaid; returns the number of invoices."""
    now = spec.now
    next_payment = (session.scalar(select(func.max(Payment.id))) or 0) + 1
    supervisor = session.get(Staff, "SUP1")
    assert supervisor is not None  # written by write_site
    invoices, lines, payments, allocations, events = [], [], [], [], []
    for tenancy in tenancies:
        unit = units[tenancy.unit]
        p_late = sigmoid(spec.late_base + spec.late_per_dissatisfaction * tenancy.d)
        late_mean = spec.late_days_mean * math.exp(0.4 * tenancy.d)
        address = _address(tenancy)
        for lease in tenancy.leases:
            plan = [RentStep(lease.start, lease.rent)]
            period = lease.start
            while period < lease.end and period < now:
                span_end = min(add_months(period, tenancy.cycle), lease.end)
                if period >= spec.start:
                    invoice = f"{lease.id}/{period:%Y-%m}"
                    total = round_half_up(rent_for(plan, period, span_end))
                    due = period + timedelta(days=10)
                    if rng.random() < p_late:
                        late = 1 + round(rng.expovariate(1.0 / late_mean))
                        paid = due + timedelta(days=min(late, spec.late_days_max))
                    else:
                        paid = due - timedelta(days=rng.randint(0, 7))
                    settled = paid < now
                    invoices.append(
                        {
                            "id": invoice,
                            "lease_id": lease.id,
                            "period_start": period,
                            "period_end": add_months(period, 1),
                            "issued_on": period,
                            "due_on": due,
                            "total_cents": total,
                            "paid_cents": total if settled else 0,
                            "status": "paid" if settled else "open",
                            "paid_on": paid if settled else None,
                            "fee_cents": 0,
                            "fee_billed_cents": 0,
                        }
                    )
                    lines.append(
                        {
                            "invoice_id": invoice,
                            "line_no": 0,
                            "lease_id": lease.id,
                            "kind": "rent",
                            "covers_from": period,
                            "covers_to": span_end,
                            "cents": total,
                            "ref": None,
                            "description": f"rent {lease.id} {period.isoformat()} … "
                            f"{span_end.isoformat()}",
                        }
                    )
                    if settled:
                        payments.append(
                            {
                                "id": next_payment,
                                "lease_id": lease.id,
                                "ref": f"SIM-{invoice}",
                                "received_on": paid,
                                "cents": total,
                            }
                        )
                        allocations.append(
                            {
                                "payment_id": next_payment,
                                "invoice_id": invoice,
                                "cents": total,
                                "allocated_on": paid,
                            }
                        )
                        next_payment += 1
                    events.extend(
                        _collections(
                            invoice,
                            due,
                            paid if settled else None,
                            now,
                            address,
                            unit.manager,
                            supervisor,
                        )
                    )
                period = span_end
    _bulk(session, Invoice, invoices)
    _bulk(session, InvoiceLine, lines)
    _bulk(session, Payment, payments)
    _bulk(session, PaymentAllocation, allocations)
    _bulk(session, CollectionEvent, events)
    return len(invoices)


def _collections(
    invoice: str,
    due: date,
    paid: date | None,
    now: date,
    address: str,
    manager: str,
    supervisor: Staff,
) -> Iterator[dict[str, Any]]:
    """The ladder's steps (cloud.leases.dunning.LADDER, ``step`` = days after the due date,
    as the daily job stores them) reached while the invoice was unpaid and before now."""
    for rung in LADDER:
        day = due + timedelta(days=rung.days)
        if day >= now or (paid is not None and paid <= day):
            return
        key: str | None = f"collections:{invoice}:{rung.days}"
        if rung.action == "reminder":
            channel, recipient, outcome = "email", address, "queued"
        elif rung.action in ("escalation", "legal_handover"):
            channel, recipient, outcome = supervisor.channel, supervisor.address, "queued"
        else:
            channel, recipient, outcome, key = "task", manager, "task_opened", None
        yield {
            "invoice_id": invoice,
            "step": rung.days,
            "action": rung.action,
            "due_on": day,
            "happened_on": day,
            "channel": channel,
            "recipient": recipient,
            "outcome": outcome,
            "notification_key": key,
        }


def write_engagement(
    session: Session,
    spec: PortfolioSpec,
    units: list[PlannedUnit],
    tenancies: list[Tenancy],
    rng: random.Random,
) -> int:
    """Repair tickets, surveys and activity participations while tenants occupy; returns
    the number of tickets."""
    now = spec.now
    surveys_on = [
        d
        for d in _monthly(spec.start, now, lambda m: m.replace(day=15))
        if d.month in SURVEY_MONTHS
    ]
    events_on = list(_monthly(spec.start, now, _second_saturday))
    categories = list(TICKET_CATEGORIES)
    tickets, surveys, activities = [], [], []
    for tenancy in tenancies:
        first, last = occupied_span(spec, tenancy)
        if first >= last:
            continue
        unit = units[tenancy.unit].id
        rate = spec.tickets_per_year * math.exp(0.5 * tenancy.d) / 365.0
        day = first + timedelta(days=rng.expovariate(rate))
        while day < last:
            kind = rng.choices(categories, TICKET_WEIGHTS)[0]
            resolved = day + timedelta(days=uniform_int(rng, spec.ticket_days))
            tickets.append(
                {
                    "tenant_id": tenancy.tenant_id,
                    "unit_id": unit,
                    "opened_on": day,
                    "resolved_on": resolved if resolved < now else None,
                    "summary": rng.choice(TICKET_CATEGORIES[kind]),
                    "category": kind,
                }
            )
            day += timedelta(days=rng.expovariate(rate))
        for on in surveys_on:
            if first <= on < last and rng.random() < spec.survey_response:
                score = spec.nps_mean - spec.nps_per_dissatisfaction * tenancy.d + rng.gauss(0, 1.2)
                surveys.append(
                    {
                        "tenant_id": tenancy.tenant_id,
                        "answered_on": on,
                        "score": min(10, max(0, round(score))),
                    }
                )
        joins = sigmoid(spec.activity_base - spec.activity_per_dissatisfaction * tenancy.d)
        activities.extend(
            {"tenant_id": tenancy.tenant_id, "held_on": on, "kind": "event"}
            for on in events_on
            if first <= on < last and rng.random() < joins
        )
    tickets.sort(key=lambda t: (t["opened_on"], t["tenant_id"]))
    _bulk(session, RepairComplaint, tickets)
    _bulk(session, TenantSurvey, sorted(surveys, key=lambda s: (s["answered_on"], s["tenant_id"])))
    _bulk(session, TenantActivity, sorted(activities, key=lambda a: (a["held_on"], a["tenant_id"])))
    return len(tickets)


def _monthly(start: date, end: date, pick: Callable[[date], date]) -> Iterator[date]:
    month = month_start(start)
    while month < end:
        day = pick(month)
        if start <= day < end:
            yield day
        month = add_months(month, 1)


def _second_saturday(month: date) -> date:
    return month + timedelta(days=(5 - month.weekday()) % 7 + 7)
