"""A simulated lease portfolio with daily utility use (issue #9): the generator's entry point.

:func:`generate_portfolio` writes a history of ``spec.days`` days into a real registry (site,
units, meter tree, meters, staff, tenants, leases and their rent plans, invoices with their
rent lines, payments, collections, repair tickets, surveys, activities) and one cumulative
register reading per unit meter and local midnight into a real series store. The behaviour
behind it — every parameter of :class:`~meterflow.scenarios.portfolio_plan.PortfolioSpec`
and what it means — is documented in one place: docs/vacancy.md, section "Simulated
portfolio". The hidden plan is drawn in :mod:`meterflow.scenarios.portfolio_plan`, the
registry rows are written by :mod:`meterflow.scenarios.portfolio_registry`; this module
writes the meters' daily readings and returns the counts.

The generator's hidden variables (each tenant's latent dissatisfaction, who will leave at
the next contract end, the planned cuts of use) are never written nor returned: outcomes are
learned from the lease rows (``renewed`` vs ``terminated``), as in production.

Units: areas [m²], use and registers [kWh], money [cents], dates of the site's local
calendar, instants UTC. The same spec (seed) writes the same rows and points.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from cloud.series.base import SeriesPoint, SeriesStore
from cloud.series.matrix import interval_edges
from meterflow.scenarios.portfolio_plan import (
    PlannedUnit,
    PortfolioSpec,
    Tenancy,
    occupied_span,
    plan_tenancies,
    plan_units,
)
from meterflow.scenarios.portfolio_registry import (
    write_engagement,
    write_leases,
    write_ledger,
    write_site,
)

__all__ = ["PortfolioSummary", "generate_portfolio"]

POINTS_PER_WRITE = 500_000  # series points per store.write (one transaction)


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


def _profile(spec: PortfolioSpec, tenancy: Tenancy) -> tuple[int, int, np.ndarray] | None:
    """(first, last, multiplier) of a tenancy over day indices [first, last) of the history:
    the dips, lasting cuts and the leaver's ramp and move-out days (hidden plan)."""
    first_day, last_day = occupied_span(spec, tenancy)
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
    spec: PortfolioSpec, units: list[PlannedUnit], tenancies: list[Tenancy], seed: int
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
    by_unit: dict[int, list[Tenancy]] = {}
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
    units = plan_units(spec, random.Random(seeds[0]))
    tenancies = plan_tenancies(spec, units, random.Random(seeds[1]))
    with sessions.begin() as session:
        write_site(session, spec, units)
        tenants, leases = write_leases(session, spec, units, tenancies)
        invoices = write_ledger(session, spec, units, tenancies, random.Random(seeds[2]))
        tickets = write_engagement(session, spec, units, tenancies, random.Random(seeds[3]))
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
