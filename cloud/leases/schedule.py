"""Rent schedules, pure: compile a lease's terms into effective-dated monthly rents (the
rent plan) and price any span of days from it.

A plan is a list of steps, each a monthly rent [cents] in force from a date, some of them
rent free. Fixed, stepped, percentage-rise and CPI-linked schedules all compile to such
steps up to the contract end; the last rent runs on after it (an open-ended lease keeps its
terms, Civil Code art. 734). Free-rent windows are laid over the steps from their anchor:
the start, the signing or the handover.

Proration: the rent of a span is Σ over its calendar months of monthly rent × days in the
span ÷ days of that month, exact (fractions of a cent kept); the caller rounds once per line
(:func:`cloud.leases.money.round_half_up`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from math import lcm

from cloud.leases.money import scale_cents
from cloud.leases.periods import add_months, days_in_month, month_start, months_between
from cloud.leases.terms import CpiLinked, FixedRent, FreeRent, PercentRise, RentSchedule


@dataclass(frozen=True)
class RentStep:
    """A monthly rent [cents] in force from ``starts_on``; ``free`` days cost nothing."""

    starts_on: date
    monthly_cents: int
    free: bool = False
    source: str = "base"


@dataclass(frozen=True)
class RentPlan:
    """The compiled steps; rents are known for days before ``known_until`` (None: all).

    A CPI-linked plan stops at the first adjustment whose index is not published yet.
    """

    steps: tuple[RentStep, ...]
    known_until: date | None = None


CPI_YOY, CPI_LEVEL = "yoy", "level"
#: How a month's CPI figure is given: ``yoy`` (上年同月=100, NBS's headline figure: 100.4 is
#: +0.4 % on the same month a year before) or ``level`` (定基, an index on a fixed base month).
CPI_BASES = (CPI_YOY, CPI_LEVEL)


@dataclass(frozen=True)
class CpiFigure:
    """A month's published CPI: ``value`` on ``basis`` (:data:`CPI_BASES`)."""

    basis: str
    value: Decimal


CpiSeries = Mapping[date, CpiFigure | Decimal]
"""A CPI series: month (its first day) → figure (a bare number is a level)."""


def _figure(entry: CpiFigure | Decimal | None) -> CpiFigure | None:
    """A series entry as a figure; a bare number is a level (the series' older form)."""
    if entry is None or isinstance(entry, CpiFigure):
        return entry
    return CpiFigure(CPI_LEVEL, Decimal(entry))


def cpi_reference_month(adjustment: date, lag_months: int) -> date:
    """The month whose CPI an adjustment on ``adjustment`` uses: its month less the lag."""
    return add_months(month_start(adjustment), -lag_months)


def cpi_rise(cpi: CpiSeries, adjustment: date, lag_months: int) -> Decimal | None:
    """The CPI's rise over a year for the adjustment's month m (a fraction, 0.02 = 2 %),
    from the series keyed by the first day of each month; None when it is not published.

    With r = m − lag: a year-on-year figure for r gives it directly (value ÷ 100 − 1); else
    a level for r and for r − 12 give it as a ratio (CPI(r) ÷ CPI(r − 12) − 1)."""
    ref = cpi_reference_month(adjustment, lag_months)
    now = _figure(cpi.get(ref))
    if now is None:
        return None
    if now.basis == CPI_YOY:
        return now.value / 100 - 1
    year_before = _figure(cpi.get(add_months(ref, -12)))
    if year_before is None or year_before.basis != CPI_LEVEL:
        return None
    return now.value / year_before.value - 1


def cpi_months_missing(cpi: CpiSeries, adjustment: date, lag_months: int) -> tuple[date, ...]:
    """What would let :func:`cpi_rise` answer for the adjustment: the reference month r
    (its year-on-year figure, or its level) and, when r's level is given without r − 12's,
    that month's level; () when it answers already."""
    ref = cpi_reference_month(adjustment, lag_months)
    now = _figure(cpi.get(ref))
    if now is None:
        return (ref,)
    if cpi_rise(cpi, adjustment, lag_months) is None:
        return (add_months(ref, -12),)
    return ()


def cpi_months_used(
    rent: CpiLinked, start: date, end: date, cpi: CpiSeries
) -> list[tuple[date, tuple[date, ...]]]:
    """Each adjustment of a CPI-linked rent the series answers, with the months whose
    figures gave its rise: r (a year-on-year figure) or r and r − 12 (levels)."""
    out: list[tuple[date, tuple[date, ...]]] = []
    k = 1
    while (on := add_months(start, k * rent.every_months)) < end:
        if cpi_rise(cpi, on, rent.lag_months) is None:
            break
        ref = cpi_reference_month(on, rent.lag_months)
        figure = _figure(cpi.get(ref))
        used = (
            (ref,)
            if figure is not None and figure.basis == CPI_YOY
            else (ref, add_months(ref, -12))
        )
        out.append((on, used))
        k += 1
    return out


def rate_changes(
    rent: RentSchedule, start: date, end: date, cpi: CpiSeries
) -> tuple[list[RentStep], date | None]:
    """The schedule's rents [cents per month] from ``start`` to ``end`` (exclusive), without
    free rent, and the date rents are known until (None: all)."""
    if isinstance(rent, FixedRent):
        return [RentStep(start, rent.monthly_cents)], None
    if isinstance(rent, PercentRise | CpiLinked):
        steps = [RentStep(start, rent.monthly_cents)]
        k = 1
        while (on := add_months(start, k * rent.every_months)) < end:
            if isinstance(rent, PercentRise):
                rise, source = rent.rise, "rise"
            else:
                found = cpi_rise(cpi, on, rent.lag_months)
                if found is None:
                    return steps, on
                rise, source = min(max(found, rent.floor), rent.cap), "cpi"
            steps.append(
                RentStep(on, scale_cents(steps[-1].monthly_cents, 1 + rise), False, source)
            )
            k += 1
        return steps, None
    return [
        RentStep(s.from_, s.monthly_cents, False, "step") for s in rent.steps if s.from_ < end
    ], None


def free_windows(
    free_rent: Iterable[FreeRent], *, start: date, signed_on: date | None, handover_on: date | None
) -> list[tuple[date, date]]:
    """Each free-rent window as [from, to) from its anchor (start, signing or handover)."""
    anchors = {"start": start, "signing": signed_on or start, "handover": handover_on or start}
    out = []
    for f in free_rent:
        begin = anchors[f.anchor]
        out.append((begin, add_months(begin, f.months) + timedelta(days=f.days)))
    return out


def compile_plan(
    rent: RentSchedule,
    free_rent: Iterable[FreeRent],
    *,
    start: date,
    end: date,
    signed_on: date | None = None,
    handover_on: date | None = None,
    cpi: CpiSeries | None = None,
) -> RentPlan:
    """The rent plan of a lease running [``start``, ``end``): rate steps with the free
    windows laid over them; consecutive equal steps merged."""
    rates, known_until = rate_changes(rent, start, end, cpi or {})
    windows = [
        (max(a, start), b)
        for a, b in free_windows(
            free_rent, start=start, signed_on=signed_on, handover_on=handover_on
        )
        if b > start
    ]
    cuts = sorted({s.starts_on for s in rates} | {d for w in windows for d in w if d >= start})
    steps: list[RentStep] = []
    for day in cuts:
        rate = _in_force(rates, day)
        free = any(a <= day < b for a, b in windows)
        step = RentStep(day, rate.monthly_cents, free, "free" if free else rate.source)
        if steps and (steps[-1].monthly_cents, steps[-1].free) == (step.monthly_cents, free):
            continue
        steps.append(step)
    return RentPlan(tuple(steps), known_until)


def _in_force(steps: Sequence[RentStep], day: date) -> RentStep:
    """The step in force on ``day`` (the first one before the plan starts); a free step
    carries the rent it waives."""
    current = steps[0]
    for s in steps:
        if s.starts_on > day:
            break
        current = s
    return current


def months_of(start: date, end: date) -> Fraction | int:
    """[``start``, ``end``) in months: whole months count 1, a partial month its days ÷ the
    days of that month."""
    if start.day == 1 and end.day == 1:
        return max(months_between(start, end), 0)
    total: Fraction | int = 0
    day = start
    while day < end:
        following = add_months(month_start(day), 1)
        stop = min(following, end)
        days, dim = (stop - day).days, days_in_month(day)
        total += 1 if days == dim else Fraction(days, dim)
        day = stop
    return total


def rent_for(steps: Sequence[RentStep], start: date, end: date) -> Fraction | int:
    """Rent [cents, exact] of the days [``start``, ``end``) under ``steps``; nothing before
    the first step, nothing on free days.

    Whole months add whole rents; the parts of months are summed as one integer numerator
    over the least common multiple of their months' lengths, so a single Fraction is made
    at the end (the same value as adding ``monthly × months_of(…)`` up, much faster)."""
    whole = 0  # cents
    num, den = 0, 1  # the parts of months: num / den cents
    last = len(steps) - 1
    for i, step in enumerate(steps):
        seg_from = step.starts_on if step.starts_on > start else start
        seg_to = end
        if i < last and steps[i + 1].starts_on < end:
            seg_to = steps[i + 1].starts_on
        cents = step.monthly_cents
        if seg_from >= seg_to or step.free or cents == 0:
            continue
        if seg_from.day == 1 and seg_to.day == 1:
            whole += cents * months_between(seg_from, seg_to)
            continue
        day = seg_from
        while day < seg_to:
            following = add_months(month_start(day), 1)
            stop = following if following < seg_to else seg_to
            days, dim = (stop - day).days, days_in_month(day)
            if days == dim:
                whole += cents
            else:
                common = lcm(den, dim)
                num = num * (common // den) + cents * days * (common // dim)
                den = common
            day = stop
    if num == 0:
        return whole
    return Fraction(whole * den + num, den)


def rent_in_force(steps: Sequence[RentStep], day: date) -> int:
    """The contract's monthly rent [cents] on ``day`` (free windows ignored): the base of a
    renewal price and of the paid-through judgement."""
    return _in_force(steps, day).monthly_cents if steps else 0


def cycle_start(anchor: date, cycle_months: int, day: date) -> date:
    """The first day of the billing cycle ``day`` falls in; cycles of ``cycle_months``
    calendar months run from the month of ``anchor``."""
    first = month_start(anchor)
    k = ((day.year - first.year) * 12 + day.month - first.month) // cycle_months
    return add_months(first, k * cycle_months)
