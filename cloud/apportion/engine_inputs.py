"""The engine's inputs: the period and its slices, meters, tree, policy — as arrays.

:class:`EngineInputs` is everything :func:`cloud.apportion.engine.apportion` computes
from (numpy arrays and small frozen dataclasses; no database, no I/O);
:mod:`cloud.apportion.case.conversion` builds it from a case file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from cloud.apportion.keys import Rule
from cloud.apportion.money import Bill, TariffVersion


@dataclass(frozen=True)
class Period:
    """Billing period in the site's local calendar: ``days`` days from ``first_day``
    (half-open), cut into slices at ``breakpoints`` (day indices, first 0, last ``days``)."""

    first_day: date
    days: int
    breakpoints: np.ndarray

    @property
    def slice_days(self) -> np.ndarray:
        return np.diff(self.breakpoints)

    def day(self, index: int) -> date:
        return self.first_day + timedelta(days=int(index))


@dataclass(frozen=True)
class MeterInputs:
    """Meter installations (one row each; a replacement is a second row on the same node).

    ``registers`` (meters, days + 1, registers): readings at local midnights [register
    unit], NaN where none; ``multiplier`` (meters, slices) [kWh per register unit];
    ``capacity`` (meters,) rollover value, NaN = none; ``active_from`` / ``active_to``
    installed boundaries; ``history_kwh_per_day`` (meters, registers) comparable-period
    average [kWh/day], NaN = none.
    """

    ids: tuple[str, ...]
    node: np.ndarray
    registers: np.ndarray
    multiplier: np.ndarray
    capacity: np.ndarray
    bidirectional: np.ndarray
    active_from: np.ndarray
    active_to: np.ndarray
    history_kwh_per_day: np.ndarray


@dataclass(frozen=True)
class TreeInputs:
    """Meter tree nodes: ``kind`` (:class:`NodeKind`), ``parent`` (−1 at the main),
    ``rules`` (main, branch, common), ``area`` [m²] of units (and landlord premises),
    ``building`` group index (−1 none)."""

    ids: tuple[str, ...]
    kind: np.ndarray
    parent: np.ndarray
    rules: tuple[Rule | None, ...]
    area: np.ndarray
    building: np.ndarray


@dataclass(frozen=True)
class Policy:
    """Site-wide settings of a run.

    ``rollover_plausibility``: a wrap may be at most this many times the average daily
    use × days; ``markup_cap`` [CNY/kWh] over catalog (0 in China); ``demand_basis``:
    ``area`` (a fixed part, by area × days) or ``usage`` (down the tree like energy);
    ``tou_min_ratio``: peak (T2) ÷ valley (T4) price below this is flagged;
    ``catalog_tolerance``: relative bill-vs-catalog difference above which it is flagged.
    """

    rollover_plausibility: float = 3.0
    markup_cap: Decimal = Decimal(0)
    demand_basis: str = "area"
    tou_min_ratio: float = 3.0
    catalog_tolerance: float = 0.01


@dataclass(frozen=True)
class EngineInputs:
    """Everything a run computes from, as arrays."""

    period: Period
    registers: tuple[str, ...]
    meters: MeterInputs
    tree: TreeInputs
    tenants: tuple[str, ...]
    occupant: np.ndarray
    tariffs: tuple[TariffVersion, ...]
    bill: Bill
    drivers: Mapping[str, np.ndarray] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
