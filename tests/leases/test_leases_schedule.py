"""Rent schedules, pure: fixed, stepped, percentage rise, CPI-linked with floor and cap,
free rent from its anchor, proration by days, rounding, billing cycles."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.leases.billing import rent_segments
from cloud.leases.errors import LeaseError
from cloud.leases.money import round_half_up
from cloud.leases.periods import BillingPeriod, add_months
from cloud.leases.schedule import (
    CpiFigure,
    RentStep,
    compile_plan,
    cpi_months_missing,
    cpi_rise,
    months_of,
    rent_for,
    rent_in_force,
)
from cloud.leases.terms import CpiLinked, FixedRent, FreeRent, LeaseTerms, PercentRise, SteppedRent

START, END = date(2026, 1, 1), date(2029, 1, 1)


def cpi_levels(rises: dict[int, str], *, lag_month: int = 12) -> dict[date, Decimal]:
    """A CPI level series whose year-on-year rise in December of each year is given."""
    levels = {date(2025, 12, 1): Decimal(100)}
    for year, rise in sorted(rises.items()):
        levels[date(year, lag_month, 1)] = levels[date(year - 1, lag_month, 1)] * (
            1 + Decimal(rise)
        )
    return levels


def test_fixed_rent_is_one_step() -> None:
    plan = compile_plan(FixedRent(monthly_cents=500_000), [], start=START, end=END)
    assert plan.steps == (RentStep(START, 500_000),) and plan.known_until is None


def test_stepped_rent_changes_on_its_dates() -> None:
    rent = SteppedRent(
        steps=[
            {"from": START, "monthly_cents": 500_000},
            {"from": date(2027, 1, 1), "monthly_cents": 520_000},
        ]
    )
    plan = compile_plan(rent, [], start=START, end=END)
    assert [(s.starts_on, s.monthly_cents) for s in plan.steps] == [
        (START, 500_000),
        (date(2027, 1, 1), 520_000),
    ]


def test_percentage_rise_compounds_and_rounds_half_up_to_the_cent() -> None:
    plan = compile_plan(
        PercentRise(monthly_cents=333_333, rise=Decimal("0.05")), [], start=START, end=END
    )
    # 333333 × 1.05 = 349999.65 → 350000; × 1.05 = 367500.00
    assert [s.monthly_cents for s in plan.steps] == [333_333, 350_000, 367_500]
    assert [s.starts_on for s in plan.steps] == [START, date(2027, 1, 1), date(2028, 1, 1)]


def test_cpi_rise_is_capped_and_floored() -> None:
    rent = CpiLinked(monthly_cents=500_000, floor=Decimal("0.01"), cap=Decimal("0.04"))
    plan = compile_plan(
        rent, [], start=START, end=END, cpi=cpi_levels({2026: "0.07", 2027: "-0.02"})
    )
    # 2027: +7 % capped at +4 %; 2028: −2 % floored at +1 %
    assert [s.monthly_cents for s in plan.steps] == [500_000, 520_000, 525_200]
    assert plan.known_until is None


def test_cpi_rise_inside_the_band_is_passed_on() -> None:
    rent = CpiLinked(monthly_cents=500_000, floor=Decimal(0), cap=Decimal("0.05"))
    plan = compile_plan(
        rent, [], start=START, end=date(2028, 1, 1), cpi=cpi_levels({2026: "0.023"})
    )
    assert [s.monthly_cents for s in plan.steps] == [500_000, 511_500]


def test_cpi_plan_stops_where_the_index_is_not_published() -> None:
    rent = CpiLinked(monthly_cents=500_000, cap=Decimal("0.05"))
    plan = compile_plan(rent, [], start=START, end=END, cpi=cpi_levels({2026: "0.02"}))
    assert [s.monthly_cents for s in plan.steps] == [500_000, 510_000]
    assert plan.known_until == date(2028, 1, 1)
    assert cpi_rise(cpi_levels({2026: "0.02"}), date(2028, 1, 1), 1) is None


def test_a_yoy_figure_gives_the_rise_directly_and_mixes_with_levels() -> None:
    """上年同月=100: 103.1 for December 2026 is +3.1 % (no level a year before needed);
    December 2027 as levels (2026: 612.3, 2027: 618.9) is their ratio."""
    rent = CpiLinked(monthly_cents=500_000, floor=Decimal(0), cap=Decimal("0.05"))
    cpi = {
        date(2026, 12, 1): CpiFigure("yoy", Decimal("103.1")),
        date(2027, 12, 1): CpiFigure("level", Decimal("618.9")),
    }
    assert cpi_rise(cpi, date(2027, 1, 1), 1) == Decimal("0.031")
    assert cpi_rise(cpi, date(2028, 1, 1), 1) is None  # December 2026 is no level
    assert cpi_months_missing(cpi, date(2028, 1, 1), 1) == (date(2026, 12, 1),)
    cpi[date(2026, 12, 1)] = CpiFigure("level", Decimal("612.3"))
    plan = compile_plan(rent, [], start=date(2027, 1, 1), end=date(2029, 1, 1), cpi=cpi)
    # 500 000 × 618.9 ÷ 612.3 = 505 389.51… → 505 390
    assert [s.monthly_cents for s in plan.steps] == [500_000, 505_390]
    cpi[date(2026, 12, 1)] = CpiFigure("yoy", Decimal("103.1"))
    plan = compile_plan(rent, [], start=START, end=date(2028, 1, 1), cpi=cpi)
    assert [s.monthly_cents for s in plan.steps] == [500_000, 515_500]  # × 1.031
    assert cpi_months_missing(cpi, date(2027, 1, 1), 1) == ()


def test_free_rent_runs_from_the_handover_when_the_contract_says_so() -> None:
    free = [FreeRent(months=2, anchor="handover")]
    plan = compile_plan(
        FixedRent(monthly_cents=600_000),
        free,
        start=START,
        end=END,
        signed_on=date(2025, 11, 20),
        handover_on=date(2026, 1, 15),
    )
    assert [(s.starts_on, s.free) for s in plan.steps] == [
        (START, False),
        (date(2026, 1, 15), True),
        (date(2026, 3, 15), False),
    ]
    # January: 14 paid days of 31; February free; March: 17 paid days of 31
    assert round_half_up(rent_for(plan.steps, START, date(2026, 2, 1))) == 270_968
    assert rent_for(plan.steps, date(2026, 2, 1), date(2026, 3, 1)) == 0
    assert round_half_up(rent_for(plan.steps, date(2026, 3, 1), date(2026, 4, 1))) == 329_032


def test_free_rent_anchored_on_signing_is_mostly_used_up_before_the_start() -> None:
    free = [FreeRent(months=2, anchor="signing")]
    plan = compile_plan(
        FixedRent(monthly_cents=600_000),
        free,
        start=START,
        end=END,
        signed_on=date(2025, 11, 20),
        handover_on=date(2026, 1, 15),
    )
    assert [(s.starts_on, s.free) for s in plan.steps] == [
        (START, True),
        (date(2026, 1, 20), False),
    ]


def test_proration_is_by_the_days_of_each_month() -> None:
    steps = [RentStep(START, 310_000)]
    assert rent_for(steps, date(2026, 1, 11), date(2026, 2, 1)) == 210_000  # 21/31
    assert rent_for(steps, date(2026, 2, 15), date(2026, 3, 1)) == Fraction(310_000 * 14, 28)
    assert months_of(date(2026, 1, 1), date(2027, 1, 1)) == 12


def test_rent_changes_mid_month_are_priced_per_segment() -> None:
    steps = [RentStep(START, 300_000), RentStep(date(2026, 3, 16), 310_000)]
    got = rent_for(steps, date(2026, 3, 1), date(2026, 4, 1))
    assert got == Fraction(300_000 * 15 + 310_000 * 16, 31)
    assert rent_in_force(steps, date(2026, 3, 15)) == 300_000
    assert rent_in_force(steps, date(2026, 3, 16)) == 310_000


@pytest.mark.parametrize(
    ("value", "cents"),
    [
        (Fraction(1, 2), 1),
        (Fraction(-1, 2), -1),
        (Fraction(5, 2), 3),
        (Fraction(49, 100), 0),
        (Decimal("2.5"), 3),
        (Decimal("-2.5"), -3),
    ],
)
def test_rounding_is_half_up_away_from_zero(value: Fraction | Decimal, cents: int) -> None:
    assert round_half_up(value) == cents


@given(
    st.dates(date(2026, 1, 1), date(2027, 12, 31)),
    st.integers(0, 400),
    st.integers(0, 400),
    st.integers(1, 2_000_000),
)
def test_rent_of_adjacent_spans_adds_up_exactly(a: date, d1: int, d2: int, cents: int) -> None:
    steps = [RentStep(date(2025, 1, 1), cents), RentStep(date(2026, 7, 1), cents + 777)]
    b, c = a + timedelta(days=d1), a + timedelta(days=d1 + d2)
    assert rent_for(steps, a, b) + rent_for(steps, b, c) == rent_for(steps, a, c)


def _rent_by_definition(steps: list[RentStep], start: date, end: date) -> Fraction:
    """Σ over each day of [start, end) of its step's monthly rent ÷ the days of its month
    (nothing before the first step or on free days): the proration rule, day by day."""
    total = Fraction(0)
    day = start
    while day < end:
        in_force = [s for s in steps if s.starts_on <= day]
        if in_force and not in_force[-1].free:
            dim = (add_months(day.replace(day=1), 1) - day.replace(day=1)).days
            total += Fraction(in_force[-1].monthly_cents, dim)
        day += timedelta(days=1)
    return total


@given(
    st.lists(
        st.tuples(st.integers(0, 900), st.integers(0, 3_000_000), st.booleans()),
        min_size=1,
        max_size=4,
        unique_by=lambda t: t[0],
    ),
    st.integers(-40, 950),
    st.integers(0, 420),
)
def test_rent_for_equals_the_day_by_day_definition(
    raw: list[tuple[int, int, bool]], offset: int, length: int
) -> None:
    base = date(2027, 11, 1)  # spans cross February of a leap year (2028)
    steps = [RentStep(base + timedelta(days=d), cents, free) for d, cents, free in sorted(raw)]
    a = base + timedelta(days=offset)
    b = a + timedelta(days=length)
    got = rent_for(steps, a, b)
    assert got == _rent_by_definition(steps, a, b)
    assert isinstance(got, int | Fraction)


def test_monthly_cycle_bills_the_period_and_catches_up_a_late_start() -> None:
    march, april = BillingPeriod.parse("2026-03"), BillingPeriod.parse("2026-04")
    assert rent_segments(date(2026, 3, 20), None, 1, march) == (
        (date(2026, 3, 20), date(2026, 4, 1)),
        None,
    )
    assert rent_segments(date(2026, 3, 20), None, 1, april) == (
        (date(2026, 4, 1), date(2026, 5, 1)),
        (date(2026, 3, 20), date(2026, 4, 1)),
    )


def test_quarterly_cycle_is_billed_in_the_month_it_starts_and_stops_at_the_end() -> None:
    rent_from = date(2026, 1, 10)
    got = {
        p: rent_segments(rent_from, date(2026, 8, 15), 3, BillingPeriod.parse(p))[0]
        for p in ("2026-01", "2026-02", "2026-03", "2026-04", "2026-07", "2026-10")
    }
    assert got == {
        "2026-01": (rent_from, date(2026, 4, 1)),
        "2026-02": None,
        "2026-03": None,
        "2026-04": (date(2026, 4, 1), date(2026, 7, 1)),
        "2026-07": (date(2026, 7, 1), date(2026, 8, 15)),
        "2026-10": None,
    }


def test_terms_refuse_contradictions_with_what_was_expected() -> None:
    with pytest.raises(ValueError, match="end_on 2026-01-01 must be after start_on"):
        LeaseTerms(
            id="L",
            tenant_id="T",
            unit_id="U",
            manager_id="m",
            start_on=START,
            end_on=START,
            rent=FixedRent(monthly_cents=1),
        )
    with pytest.raises(ValueError, match=r"floor 0\.05 is above cap 0\.03"):
        CpiLinked(monthly_cents=1, floor=Decimal("0.05"), cap=Decimal("0.03"))
    with pytest.raises(LeaseError, match="expected YYYY-MM"):
        BillingPeriod.parse("2026-13")
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
