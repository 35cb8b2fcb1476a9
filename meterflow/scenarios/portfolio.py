"""A simulated lease portfolio with daily utility use, for move-out prediction (issue #9).

:func:`generate_portfolio` writes a history of ``spec.days`` days into a real registry (site,
units, meter tree, meters, staff, tenants, leases and their rent plans, invoices with their
rent lines, payments, collections, repair tickets, surveys, activities) and one cumulative
register reading per unit meter and local midnight into a real series store. The behaviour
behind it — every parameter of :class:`PortfolioSpec` and what it means — is documented in
one place: docs/vacancy.md, section "Simulated portfolio".

The generator's hidden variables (each tenant's latent dissatisfaction, who will leave at
the next contract end, the planned cuts of use) are never written nor returned: outcomes are
learned from the lease rows (``renewed`` vs ``terminated``), as in production.

Units: areas [m²], use and registers [kWh], money [cents], dates of the site's local
calendar, instants UTC. The same spec (seed) writes the same rows and points.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

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
from cloud.series.base import SeriesPoint, SeriesStore
from cloud.series.matrix import interval_edges

__all__ = ["PortfolioSpec", "PortfolioSummary", "generate_portfolio"]

#: unit types: name, area range [m²], share of units, rent per m² relative to the building's
UNIT_TYPES = (
    ("small", 35.0, 55.0, 0.40, 1.10),
    ("medium", 60.0, 85.0, 0.40, 1.00),
    ("large", 90.0, 130.0, 0.20, 0.92),
)
TICKET_CATEGORIES = {
    "electrical": ("socket without power", "breaker trips", "light fitting broken"),
    "plumbing": ("leaking tap", "blocked drain", "no hot water"),
    "hvac": ("air conditioner not cooling", "heating too weak", "noisy ventilation"),
    "general": ("door lock stuck", "window does not close", "lift out of order"),
}
TICKET_WEIGHTS = (0.25, 0.30, 0.20, 0.25)
SURVEY_MONTHS = (1, 4, 7, 10)  # the net-promoter survey on the 15th of these months
POINTS_PER_WRITE = 500_000  # series points per store.write (one transaction)


@dataclass(frozen=True)
class PortfolioSpec:
    """What to generate; behaviour parameters are explained in docs/vacancy.md
    ("Simulated portfolio"). Probabilities are shares (0.15 = 15 %), logits are additive
    terms of a log-odds, days are calendar days."""

    start: date = date(2024, 11, 1)  # first day of the generated history (local)
    days: int = 760  # length of history; "now" = start + days
    buildings: int = 6
    units_per_building: int = 80
    site_id: str = "P1"
    tz: str = "Asia/Shanghai"
    quantity: str = "energy_import"  # series quantity (cumulative kWh register)
    seed: int = 7
    # people and prices
    managers: int = 4  # property managers, one supervisor above them
    rent_per_m2_cents: int = 10_000  # mean asking rent [cents per m² per month]
    building_rent_sd: float = 0.12  # log-sd of a building's rent level
    rent_premium_sd: float = 0.05  # new tenant's rent ÷ asking − 1 ~ N(0, sd)
    renewal_rise: tuple[float, float] = (0.03, 0.05)  # rent rise at a renewal ~ U
    quarterly_share: float = 0.10  # tenancies paying every 3 months
    initial_vacancy: float = 0.05  # units vacant on ``start``
    vacancy_mean_days: float = 45.0  # vacancy after a move-out ~ Exp(mean) ...
    vacancy_max_days: int = 180  # ... capped; the next lease starts on a 1st
    # leaving at a contract end: logit = base + d·w_d + premium·w_p + (tenure − 1)·w_t
    leave_base: float = -0.9
    leave_per_dissatisfaction: float = 1.3
    leave_per_premium: float = 8.0  # per unit of premium (+5 % → +0.4)
    leave_per_tenure_year: float = -0.2
    # leavers' use before the move-out
    cut_range: tuple[float, float] = (0.20, 0.60)  # final cut of use ~ U
    cut_lead_days: tuple[int, int] = (40, 90)  # ramp starts this long before
    cut_ramp_days: tuple[int, int] = (20, 40)  # ramp length ~ U
    move_out_days: tuple[int, int] = (0, 10)  # near-zero days at the end ~ U
    move_out_level: float = 0.05  # use on those days ÷ normal
    # cuts of use unrelated to leaving, per lease-year (any tenant)
    travel_dip_share: float = 0.15
    travel_dip_days: tuple[int, int] = (7, 30)
    travel_dip_level: tuple[float, float] = (0.0, 0.30)  # use ÷ normal during a dip
    lasting_cut_share: float = 0.10
    lasting_cut_range: tuple[float, float] = (0.10, 0.30)  # for the rest of the tenancy
    # daily use [kWh] = area × kwh_per_m2_day × intensity × weekly × seasonal × noise
    kwh_per_m2_day: float = 0.15
    intensity_sd: float = 0.35  # log-sd of a tenant's intensity (mean 1)
    daily_noise_sd: float = 0.15  # log-sd of a day's noise (mean 1)
    standby_kwh: tuple[float, float] = (0.0, 0.3)  # a vacant day ~ U
    # payments: P(late) = sigmoid(late_base + late_per_dissatisfaction · d)
    late_base: float = -2.6
    late_per_dissatisfaction: float = 0.9
    late_days_mean: float = 5.0  # days late − 1 ~ Exp(mean · e^(0.4·d)) ...
    late_days_max: int = 120  # ... capped
    # tickets, surveys, activities
    tickets_per_year: float = 1.2  # × e^(0.5·d), while the tenant occupies
    ticket_days: tuple[int, int] = (1, 30)  # days to resolve ~ U
    survey_response: float = 0.6  # share of occupying tenants answering
    nps_mean: float = 7.5  # score = mean − nps_per_d · d + N(0, 1.2)
    nps_per_dissatisfaction: float = 1.4
    activity_base: float = -0.9  # P(joins) = sigmoid(base − 0.7 · d)
    activity_per_dissatisfaction: float = 0.7

    @property
    def now(self) -> date:
        """The first day not generated: the history is [start, now)."""
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class PortfolioSummary:
    """What was written: counts only, no outcome or hidden variable."""

    units: int
    leases: int
    tenants: int
    points: int
    invoices: int
    tickets: int
    now: date


# ------------------------------------------------------------------ the hidden plan


@dataclass
class _Unit:
    id: str
    building: int
    floor: int
    unit_type: str
    area: float  # [m²]
    asking: int  # [cents per month]
    manager: str


@dataclass
class _Lease:
    id: str
    start: date
    end: date
    rent: int  # [cents per month]
    signed: date
    renewed_from: str | None
    outcome: str | None = None  # "renewed" | "terminated" once decided before now


@dataclass
class _Tenancy:
    """One tenant's stay in one unit; ``d`` and the cuts are hidden, never written."""

    unit: int
    tenant_id: str
    d: float
    intensity: float
    cycle: int
    leases: list[_Lease] = field(default_factory=list)
    move_out: date | None = None  # the move-out, also when planned after now (hidden)
    leaver_cut: tuple[int, int, float, int] | None = None  # lead, ramp, cut, zero days
    dips: list[tuple[date, int, float]] = field(default_factory=list)  # start, days, level
    lasting: list[tuple[date, float]] = field(default_factory=list)  # start, cut


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _uniform_int(rng: random.Random, bounds: tuple[int, int]) -> int:
    return rng.randint(bounds[0], bounds[1])


def _next_first(day: date) -> date:
    """The first 1st of a month on or after ``day``."""
    return day if day.day == 1 else add_months(month_start(day), 1)


def _units(spec: PortfolioSpec, rng: random.Random) -> list[_Unit]:
    """Units ``B<building>-<number>``, ten to a floor, with type, area [m²] and asking rent
    [cents per month, whole 10 CNY]."""
    width = max(3, len(str(spec.units_per_building)))
    types = [t[0] for t in UNIT_TYPES]
    shares = [t[3] for t in UNIT_TYPES]
    out = []
    for b in range(spec.buildings):
        level = spec.rent_per_m2_cents * math.exp(rng.gauss(0.0, spec.building_rent_sd))
        manager = f"MGR{b % spec.managers + 1}"
        for n in range(spec.units_per_building):
            kind = rng.choices(types, shares)[0]
            _, low, high, _, factor = UNIT_TYPES[types.index(kind)]
            area = round(rng.uniform(low, high), 1)
            asking = round(level * factor * area / 1000) * 1000
            out.append(
                _Unit(f"B{b + 1}-{n + 1:0{width}d}", b, n // 10 + 1, kind, area, asking, manager)
            )
    return out


def _plan(spec: PortfolioSpec, units: list[_Unit], rng: random.Random) -> list[_Tenancy]:
    """Every unit's chain of tenancies and leases over [start, now), with the decision at
    the first contract end at or after now (hidden) so that planned move-outs already
    show in the use before now."""
    now = spec.now
    firsts = [add_months(month_start(spec.start - timedelta(days=1)), -k) for k in range(12)]
    tenancies: list[_Tenancy] = []
    for u, unit in enumerate(units):
        if rng.random() < spec.initial_vacancy:
            begin = _next_first(spec.start + timedelta(days=_vacancy_days(spec, rng)))
        else:
            begin = rng.choice(firsts)
        number = 0
        while begin < now:
            number += 1
            tenancy = _Tenancy(
                unit=u,
                tenant_id=f"T{len(tenancies) + 1:06d}",
                d=rng.gauss(0.0, 1.0),
                intensity=math.exp(rng.gauss(-(spec.intensity_sd**2) / 2, spec.intensity_sd)),
                cycle=3 if rng.random() < spec.quarterly_share else 1,
            )
            tenancies.append(tenancy)
            base_id = f"L-{unit.id}-{number:02d}"
            rent = round(unit.asking * (1 + rng.gauss(0.0, spec.rent_premium_sd)) / 100) * 100
            lease = _Lease(
                base_id,
                begin,
                add_months(begin, 12),
                rent,
                begin - timedelta(days=rng.randint(14, 28)),
                None,
            )
            while True:
                tenancy.leases.append(lease)
                _lease_year_events(spec, tenancy, lease, rng)
                premium = lease.rent / unit.asking - 1
                logit = (
                    spec.leave_base
                    + spec.leave_per_dissatisfaction * tenancy.d
                    + spec.leave_per_premium * premium
                    + spec.leave_per_tenure_year * (len(tenancy.leases) - 1)
                )
                leaves = rng.random() < _sigmoid(logit)
                decided = lease.end < now
                if leaves:
                    tenancy.move_out = lease.end
                    tenancy.leaver_cut = (
                        _uniform_int(rng, spec.cut_lead_days),
                        _uniform_int(rng, spec.cut_ramp_days),
                        rng.uniform(*spec.cut_range),
                        _uniform_int(rng, spec.move_out_days),
                    )
                    if decided:
                        lease.outcome = "terminated"
                    break
                if not decided:
                    break
                lease.outcome = "renewed"
                rise = rng.uniform(*spec.renewal_rise)
                lease = _Lease(
                    f"{base_id}~r{len(tenancy.leases)}",
                    lease.end,
                    add_months(lease.end, 12),
                    round(lease.rent * (1 + rise) / 100) * 100,
                    lease.end - timedelta(days=rng.randint(14, 45)),
                    lease.id,
                )
            if tenancy.move_out is None or tenancy.move_out >= now:
                break
            begin = _next_first(tenancy.move_out + timedelta(days=_vacancy_days(spec, rng)))
    return tenancies


def _vacancy_days(spec: PortfolioSpec, rng: random.Random) -> int:
    """Days [1, vacancy_max_days] a unit stays empty after a move-out."""
    days = round(rng.expovariate(1.0 / spec.vacancy_mean_days))
    return min(max(1, days), spec.vacancy_max_days)


def _lease_year_events(
    spec: PortfolioSpec, tenancy: _Tenancy, lease: _Lease, rng: random.Random
) -> None:
    """Travel dips and lasting cuts of use, drawn per lease-year whatever its outcome."""
    term = (lease.end - lease.start).days
    if rng.random() < spec.travel_dip_share:
        length = _uniform_int(rng, spec.travel_dip_days)
        tenancy.dips.append(
            (
                lease.start + timedelta(days=rng.randrange(term - length)),
                length,
                rng.uniform(*spec.travel_dip_level),
            )
        )
    if rng.random() < spec.lasting_cut_share:
        tenancy.lasting.append(
            (
                lease.start + timedelta(days=rng.randrange(term)),
                rng.uniform(*spec.lasting_cut_range),
            )
        )


# ------------------------------------------------------------------ registry rows


def _address(tenancy: _Tenancy) -> str:
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


def _write_site(session: Session, spec: PortfolioSpec, units: list[_Unit]) -> None:
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


def _write_leases(
    session: Session, spec: PortfolioSpec, units: list[_Unit], tenancies: list[_Tenancy]
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


def _write_ledger(
    session: Session,
    spec: PortfolioSpec,
    units: list[_Unit],
    tenancies: list[_Tenancy],
    rng: random.Random,
) -> int:
    """Invoices issued in [start, now) with their rent line, payment and allocation, and
    the collections steps each reached while unpaid; returns the number of invoices."""
    now = spec.now
    next_payment = (session.scalar(select(func.max(Payment.id))) or 0) + 1
    supervisor = session.get(Staff, "SUP1")
    assert supervisor is not None  # written by _write_site
    invoices, lines, payments, allocations, events = [], [], [], [], []
    for tenancy in tenancies:
        unit = units[tenancy.unit]
        p_late = _sigmoid(spec.late_base + spec.late_per_dissatisfaction * tenancy.d)
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
        elif rung.action == "escalation":
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


def _occupied(spec: PortfolioSpec, tenancy: _Tenancy) -> tuple[date, date]:
    """The tenancy's days within [start, now), as [first, last)."""
    first = max(tenancy.leases[0].start, spec.start)
    last = min(tenancy.move_out or spec.now, spec.now)
    return first, last


def _write_engagement(
    session: Session,
    spec: PortfolioSpec,
    units: list[_Unit],
    tenancies: list[_Tenancy],
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
        first, last = _occupied(spec, tenancy)
        if first >= last:
            continue
        unit = units[tenancy.unit].id
        rate = spec.tickets_per_year * math.exp(0.5 * tenancy.d) / 365.0
        day = first + timedelta(days=rng.expovariate(rate))
        while day < last:
            kind = rng.choices(categories, TICKET_WEIGHTS)[0]
            resolved = day + timedelta(days=_uniform_int(rng, spec.ticket_days))
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
        joins = _sigmoid(spec.activity_base - spec.activity_per_dissatisfaction * tenancy.d)
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


# ------------------------------------------------------------------ daily use


def _use_factors(spec: PortfolioSpec) -> np.ndarray:
    """Weekly × seasonal factor per day of [start, now) (mean about 1): weekends +10 %,
    peaks in late January (heating) and late July (cooling), ±18 %."""
    days = np.arange(spec.days)
    ordinals = spec.start.toordinal() + days
    weekday = (ordinals + 6) % 7  # date.fromordinal(1) is a Monday: weekday 0
    weekly = np.where(weekday >= 5, 1.10, 0.96)
    doy = np.array([date.fromordinal(int(o)).timetuple().tm_yday for o in ordinals])
    seasonal = 1.0 + 0.18 * np.cos(4 * np.pi * (doy - 20) / 365.25)
    return weekly * seasonal


def _profile(spec: PortfolioSpec, tenancy: _Tenancy) -> tuple[int, int, np.ndarray] | None:
    """(first, last, multiplier) of a tenancy over day indices [first, last) of the history:
    the dips, lasting cuts and the leaver's ramp and move-out days (hidden plan)."""
    first_day, last_day = _occupied(spec, tenancy)
    first, last = (first_day - spec.start).days, (last_day - spec.start).days
    if first >= last:
        return None
    t = np.arange(first, last, dtype=np.float64)
    factor = np.ones(last - first)
    for begin, length, level in tenancy.dips:
        s = (begin - spec.start).days
        factor[(t >= s) & (t < s + length)] *= level
    for begin, cut in tenancy.lasting:
        s = (begin - spec.start).days
        factor *= np.interp(t, [s, s + 14], [1.0, 1.0 - cut])
    if tenancy.leaver_cut is not None and tenancy.move_out is not None:
        lead, ramp, cut, zero = tenancy.leaver_cut
        end = (tenancy.move_out - spec.start).days
        factor *= np.interp(t, [end - lead, end - lead + ramp], [1.0, 1.0 - cut])
        factor[t >= end - zero] = spec.move_out_level
    return first, last, factor


def _series_blocks(
    spec: PortfolioSpec, units: list[_Unit], tenancies: list[_Tenancy], seed: int
) -> Iterator[list[SeriesPoint]]:
    """One register reading [kWh] per unit meter at every local midnight of [start, now],
    in blocks of units: the reading at the midnight that starts day k is the register after
    the days before k."""
    zone = ZoneInfo(spec.tz)
    edges = interval_edges(
        datetime.combine(spec.start, time(), zone),
        datetime.combine(spec.now, time(), zone),
        "1d",
        spec.tz,
    ).tolist()
    by_unit: dict[int, list[_Tenancy]] = {}
    for tenancy in tenancies:
        by_unit.setdefault(tenancy.unit, []).append(tenancy)
    factors = _use_factors(spec)
    rng = np.random.default_rng(seed)
    block = max(1, POINTS_PER_WRITE // (spec.days + 1))
    sigma = spec.daily_noise_sd
    for lo in range(0, len(units), block):
        chunk = units[lo : lo + block]
        n = len(chunk)
        level = np.zeros((n, spec.days))  # kWh of a normal day of the occupant
        occupied = np.zeros((n, spec.days), dtype=bool)
        for row in range(n):
            for tenancy in by_unit.get(lo + row, ()):
                found = _profile(spec, tenancy)
                if found is None:
                    continue
                first, last, factor = found
                level[row, first:last] = (
                    chunk[row].area * spec.kwh_per_m2_day * tenancy.intensity * factor
                )
                occupied[row, first:last] = True
        noise = rng.lognormal(-(sigma**2) / 2, sigma, size=(n, spec.days))
        standby = rng.uniform(*spec.standby_kwh, size=(n, spec.days))
        daily = np.where(occupied, level * factors * noise, standby)
        registers = np.empty((n, spec.days + 1))
        registers[:, 0] = rng.uniform(1_000.0, 30_000.0, size=n)
        registers[:, 1:] = registers[:, :1] + np.cumsum(daily, axis=1)
        values = np.round(registers, 2).tolist()
        site, quantity = spec.site_id, spec.quantity
        yield [
            SeriesPoint(site, meter, quantity, at, value, "good", "kWh")
            for meter, row in zip([f"M-{u.id}" for u in chunk], values, strict=True)
            for at, value in zip(edges, row, strict=True)
        ]


# ------------------------------------------------------------------ entry point


def generate_portfolio(
    sessions: sessionmaker[Session], store: SeriesStore, spec: PortfolioSpec
) -> PortfolioSummary:
    """Write the simulated portfolio of ``spec`` into the registry (one transaction) and
    the series store; return the counts written (never an outcome or a hidden variable).

    The registry must be at head and hold no site ``spec.site_id`` yet.
    """
    if min(spec.days, spec.buildings, spec.units_per_building, spec.managers) < 1:
        raise ValueError(
            f"a portfolio needs days, buildings, units per building and managers "
            f"≥ 1, got {spec.days}, {spec.buildings}, {spec.units_per_building}, "
            f"{spec.managers}"
        )
    seeds = np.random.SeedSequence(spec.seed).generate_state(5).tolist()
    units = _units(spec, random.Random(seeds[0]))
    tenancies = _plan(spec, units, random.Random(seeds[1]))
    with sessions.begin() as session:
        _write_site(session, spec, units)
        tenants, leases = _write_leases(session, spec, units, tenancies)
        invoices = _write_ledger(session, spec, units, tenancies, random.Random(seeds[2]))
        tickets = _write_engagement(session, spec, units, tenancies, random.Random(seeds[3]))
    points = 0
    for block in _series_blocks(spec, units, tenancies, seeds[4]):
        store.write(block)
        points += len(block)
    return PortfolioSummary(
        units=len(units),
        leases=leases,
        tenants=tenants,
        points=points,
        invoices=invoices,
        tickets=tickets,
        now=spec.now,
    )
