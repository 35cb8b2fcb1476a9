"""Tariffs, catalog prices and the pots of a bill (docs/domain.md §4, Money; China resale rule).

The money to split is the utility's invoice (the source bill): an amount per register
(T1–T4 尖峰平谷, or ``total``) and, for a two-part tariff, a demand charge. Tariff versions
are effective-dated; when several overlap the period, each register's amount is split into
one pot per version in proportion to the catalog cost of the main meter's consumption in
that version's days (its days when nothing was consumed). Tier bounds and the monthly demand
charge are prorated by days when a version covers part of the period.

Catalog prices are kept in ``Decimal`` (CNY/kWh, CNY/kW); amounts end in integer cents.
Re-selling grid power in China must be at the catalog price with no surcharge, so a tariff
with a markup above the allowed cap is flagged and holds the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

import numpy as np

from cloud.apportion.rounding import largest_remainder

CENT = Decimal("0.01")
#: Energies are put in Decimal at this precision before pricing [kWh].
ENERGY_QUANTUM = Decimal("0.000001")
#: Name of the pot holding a two-part tariff's demand charge.
DEMAND = "demand"


def cny(cents: int) -> str:
    """Integer cents as yuan with two decimals, the one way amounts are written as text:
    ``123456`` → ``"1234.56"``, ``-5`` → ``"-0.05"``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


class TariffKind(StrEnum):
    """How a tariff version prices energy."""

    FLAT = "flat"
    TOU = "tou"
    TIERED = "tiered"
    TWO_PART = "two_part"


@dataclass(frozen=True)
class Tier:
    """Energy up to ``upto_kwh`` (per month; None = no upper bound) at ``price`` [CNY/kWh]."""

    upto_kwh: Decimal | None
    price: Decimal


@dataclass(frozen=True)
class TariffVersion:
    """One effective-dated version of the site's tariff, cut to the period.

    ``from_day`` / ``to_day`` are day indices of the period, half-open. ``prices`` maps
    register → catalog price [CNY/kWh] (flat, tou, two_part); ``tiers`` apply to the
    ``total`` register (tiered); ``demand_price`` [CNY per kW per month] (two_part);
    ``markup`` is the surcharge over catalog [CNY/kWh], which must be 0 in China.
    """

    id: str
    kind: TariffKind
    from_day: int
    to_day: int
    prices: Mapping[str, Decimal] = field(default_factory=dict)
    tiers: tuple[Tier, ...] = ()
    demand_price: Decimal | None = None
    markup: Decimal = Decimal(0)

    @property
    def days(self) -> int:
        return self.to_day - self.from_day


@dataclass(frozen=True)
class Bill:
    """The utility's invoice for the main meter: amounts per register and demand [cents]."""

    invoice: str
    energy_cents: Mapping[str, int]
    demand_cents: int = 0
    demand_kw: Decimal | None = None


@dataclass(frozen=True)
class Pot:
    """An amount of the bill rounded once into lines: one register in one tariff version.

    ``register`` is a register name or :data:`DEMAND`; ``slices`` the period slices of the
    version; ``catalog_cents`` the catalog cost of the main meter's use in it (None for
    demand pots without a billed kW).
    """

    index: int
    register: str
    version: str
    cents: int
    slices: tuple[int, ...]
    catalog_cents: int | None


def to_cents(amount: Decimal) -> int:
    """Exact cents of a CNY amount; ValueError when it has fractions of a cent."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount} CNY has fractions of a cent")
    return int(cents)


def _decimal_kwh(kwh: float) -> Decimal:
    return Decimal(repr(float(kwh))).quantize(ENERGY_QUANTUM)


def tiered_cost(kwh: Decimal, tiers: tuple[Tier, ...], fraction: Decimal) -> Decimal:
    """Catalog cost [CNY] of ``kwh`` through monthly ``tiers`` prorated by ``fraction``.

    Each tier's bound is multiplied by ``fraction`` (days of the version ÷ days of the
    period), as utilities do when a price changes within a billing month.
    """
    cost = Decimal(0)
    lower = Decimal(0)
    for tier in tiers:
        upper = None if tier.upto_kwh is None else tier.upto_kwh * fraction
        portion = kwh - lower if upper is None else min(kwh, upper) - lower
        if portion > 0:
            cost += portion * tier.price
        if upper is None or kwh <= upper:
            break
        lower = upper
    return cost


def catalog_cost(version: TariffVersion, register: str, kwh: float, period_days: int) -> Decimal:
    """Catalog cost [CNY, unrounded] of ``kwh`` on ``register`` during ``version``."""
    energy = _decimal_kwh(kwh)
    if version.kind is TariffKind.TIERED:
        return tiered_cost(energy, version.tiers, Decimal(version.days) / Decimal(period_days))
    return energy * version.prices[register]


def demand_cost(version: TariffVersion, demand_kw: Decimal, period_days: int) -> Decimal:
    """Catalog demand charge [CNY, unrounded]: kW × price per month × days ÷ period days."""
    price = version.demand_price or Decimal(0)
    return demand_kw * price * Decimal(version.days) / Decimal(period_days)


def make_pots(
    bill: Bill,
    versions: tuple[TariffVersion, ...],
    registers: tuple[str, ...],
    main_kwh: np.ndarray,
    breakpoints: np.ndarray,
) -> list[Pot]:
    """Split the bill into pots: one per (register, tariff version), plus demand.

    Parameters
    ----------
    main_kwh : float64 array (slices, registers)
        The main meter's consumption per slice [kWh].
    breakpoints : int array (slices + 1,)
        Day boundaries of the slices; every version boundary is one of them.

    The split of a register's amount across versions is itself a largest-remainder
    rounding of that amount (weights: catalog cost per version; days when zero).
    """
    period_days = int(breakpoints[-1])
    starts = breakpoints[:-1]
    version_slices = [
        tuple(int(j) for j in np.flatnonzero((starts >= v.from_day) & (starts < v.to_day)))
        for v in versions
    ]
    pots: list[Pot] = []
    for r, register in enumerate(registers):
        costs = [
            catalog_cost(v, register, float(main_kwh[list(sl), r].sum()), period_days)
            for v, sl in zip(versions, version_slices, strict=True)
        ]
        weights = np.array([float(c) for c in costs])
        if weights.sum() <= 0:
            weights = np.array([float(v.days) for v in versions])
        amount = bill.energy_cents[register]
        split = (
            [amount]
            if len(versions) == 1
            else largest_remainder(amount, weights * (amount / weights.sum()))
        )
        for v, sl, cost, cents in zip(versions, version_slices, costs, split, strict=True):
            pots.append(
                Pot(
                    len(pots),
                    register,
                    v.id,
                    int(cents),
                    sl,
                    int(cost.quantize(CENT, ROUND_HALF_UP) * 100),
                )
            )
    if bill.demand_cents:
        priced = [v for v in versions if v.demand_price is not None]
        weights = np.array([float((v.demand_price or 0) * v.days) for v in versions])
        if not priced or weights.sum() <= 0:
            weights = np.array([float(v.days) for v in versions])
        split = (
            [bill.demand_cents]
            if len(versions) == 1
            else largest_remainder(bill.demand_cents, weights * (bill.demand_cents / weights.sum()))
        )
        for v, sl, cents in zip(versions, version_slices, split, strict=True):
            catalog = None
            if bill.demand_kw is not None:
                cost = demand_cost(v, bill.demand_kw, period_days)
                catalog = int(cost.quantize(CENT, ROUND_HALF_UP) * 100)
            pots.append(Pot(len(pots), DEMAND, v.id, int(cents), sl, catalog))
    return pots
