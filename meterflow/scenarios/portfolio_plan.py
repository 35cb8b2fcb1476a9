"""The simulated portfolio's spec and its hidden plan: units, tenancies, leases, cuts of use.

:class:`PortfolioSpec` is what to generate (every parameter is documented in
docs/vacancy.md, section "Simulated portfolio"). :func:`plan_units` and
:func:`plan_tenancies` draw from it the units and every unit's chain of tenancies and
leases, with each tenant's latent dissatisfaction, who leaves at a contract end and the
planned cuts of use — hidden variables that :mod:`meterflow.scenarios.portfolio` never
writes nor returns. Units: areas [m²], rents [cents per month], dates of the site's local
calendar.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from cloud.leases.periods import add_months, month_start

#: unit types: name, area range [m²], share of units, rent per m² relative to the building's
UNIT_TYPES = (
    ("small", 35.0, 55.0, 0.40, 1.10),
    ("medium", 60.0, 85.0, 0.40, 1.00),
    ("large", 90.0, 130.0, 0.20, 0.92),
)


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


# ------------------------------------------------------------------ the hidden plan


@dataclass
class PlannedUnit:
    id: str
    building: int
    floor: int
    unit_type: str
    area: float  # [m²]
    asking: int  # [cents per month]
    manager: str


@dataclass
class PlannedLease:
    id: str
    start: date
    end: date
    rent: int  # [cents per month]
    signed: date
    renewed_from: str | None
    outcome: str | None = None  # "renewed" | "terminated" once decided before now


@dataclass
class Tenancy:
    """One tenant's stay in one unit; ``d`` and the cuts are hidden, never written."""

    unit: int
    tenant_id: str
    d: float
    intensity: float
    cycle: int
    leases: list[PlannedLease] = field(default_factory=list)
    move_out: date | None = None  # the move-out, also when planned after now (hidden)
    leaver_cut: tuple[int, int, float, int] | None = None  # lead, ramp, cut, zero days
    dips: list[tuple[date, int, float]] = field(default_factory=list)  # start, days, level
    lasting: list[tuple[date, float]] = field(default_factory=list)  # start, cut


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def uniform_int(rng: random.Random, bounds: tuple[int, int]) -> int:
    return rng.randint(bounds[0], bounds[1])


def _next_first(day: date) -> date:
    """The first 1st of a month on or after ``day``."""
    return day if day.day == 1 else add_months(month_start(day), 1)


def plan_units(spec: PortfolioSpec, rng: random.Random) -> list[PlannedUnit]:
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
                PlannedUnit(
                    f"B{b + 1}-{n + 1:0{width}d}", b, n // 10 + 1, kind, area, asking, manager
                )
            )
    return out


def plan_tenancies(
    spec: PortfolioSpec, units: list[PlannedUnit], rng: random.Random
) -> list[Tenancy]:
    """Every unit's chain of tenancies and leases over [start, now), with the decision at
    the first contract end at or after now (hidden) so that planned move-outs already
    show in the use before now."""
    now = spec.now
    firsts = [add_months(month_start(spec.start - timedelta(days=1)), -k) for k in range(12)]
    tenancies: list[Tenancy] = []
    for u, unit in enumerate(units):
        if rng.random() < spec.initial_vacancy:
            begin = _next_first(spec.start + timedelta(days=_vacancy_days(spec, rng)))
        else:
            begin = rng.choice(firsts)
        number = 0
        while begin < now:
            number += 1
            tenancy = Tenancy(
                unit=u,
                tenant_id=f"T{len(tenancies) + 1:06d}",
                d=rng.gauss(0.0, 1.0),
                intensity=math.exp(rng.gauss(-(spec.intensity_sd**2) / 2, spec.intensity_sd)),
                cycle=3 if rng.random() < spec.quarterly_share else 1,
            )
            tenancies.append(tenancy)
            base_id = f"L-{unit.id}-{number:02d}"
            rent = round(unit.asking * (1 + rng.gauss(0.0, spec.rent_premium_sd)) / 100) * 100
            lease = PlannedLease(
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
                leaves = rng.random() < sigmoid(logit)
                decided = lease.end < now
                if leaves:
                    tenancy.move_out = lease.end
                    tenancy.leaver_cut = (
                        uniform_int(rng, spec.cut_lead_days),
                        uniform_int(rng, spec.cut_ramp_days),
                        rng.uniform(*spec.cut_range),
                        uniform_int(rng, spec.move_out_days),
                    )
                    if decided:
                        lease.outcome = "terminated"
                    break
                if not decided:
                    break
                lease.outcome = "renewed"
                rise = rng.uniform(*spec.renewal_rise)
                lease = PlannedLease(
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
    spec: PortfolioSpec, tenancy: Tenancy, lease: PlannedLease, rng: random.Random
) -> None:
    """Travel dips and lasting cuts of use, drawn per lease-year whatever its outcome."""
    term = (lease.end - lease.start).days
    if rng.random() < spec.travel_dip_share:
        length = uniform_int(rng, spec.travel_dip_days)
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


def occupied_span(spec: PortfolioSpec, tenancy: Tenancy) -> tuple[date, date]:
    """The tenancy's days within [start, now), as [first, last)."""
    first = max(tenancy.leases[0].start, spec.start)
    last = min(tenancy.move_out or spec.now, spec.now)
    return first, last
