"""Estimating days without readings, in docs/domain.md §4's fixed order.

1. ``history``: the same meter's comparable period (its known average daily use);
2. ``comparable_units``: units under the same parent node with complete readings — their
   use per m² per day × this unit's floor area;
3. ``building_average``: every unit of the same building with complete readings, per m²
   per day × floor area.

Each (meter, register) takes the first method that applies; estimated kWh are kept apart
from measured kWh so that the share of estimates can hold a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np

from cloud.apportion.errors import EstimationError


class Method(IntEnum):
    """How a meter's missing days were filled (0 = nothing was missing)."""

    NONE = 0
    HISTORY = 1
    COMPARABLE_UNITS = 2
    BUILDING_AVERAGE = 3

    @property
    def label(self) -> str:
        return self.name.lower()


def _group_rate_per_m2(
    measured_kwh: np.ndarray,
    covered_days: np.ndarray,
    area: np.ndarray,
    group: np.ndarray,
    complete: np.ndarray,
) -> np.ndarray:
    """Per-group use [kWh / (m² · day)] of complete meters, NaN where a group has none."""
    rows, nreg = measured_kwh.shape
    groups = int(group.max(initial=-1)) + 1
    rate = np.full((rows, nreg), np.nan)
    if groups == 0:
        return rate
    use = complete & (group[:, None] >= 0) & (area[:, None] > 0)
    gid = np.where(group >= 0, group, 0)
    for r in range(nreg):
        kwh = np.bincount(
            gid, weights=np.where(use[:, r], measured_kwh[:, r], 0.0), minlength=groups
        )
        area_days = np.bincount(
            gid, weights=np.where(use[:, r], covered_days[:, r] * area, 0.0), minlength=groups
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            per_group = np.where(area_days > 0, kwh / area_days, np.nan)
        rate[:, r] = np.where(group >= 0, per_group[gid], np.nan) * area
    return rate


def estimation_rates(
    *,
    measured_kwh: np.ndarray,
    covered_days: np.ndarray,
    missing_days: np.ndarray,
    history_kwh_per_day: np.ndarray,
    area: np.ndarray,
    peer_group: np.ndarray,
    building_group: np.ndarray,
    meter_ids: Sequence[str],
    register_names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Daily rate [kWh/day] and :class:`Method` for every (meter, register) with missing days.

    Parameters
    ----------
    measured_kwh : float64 (meters, registers)
        Consumption over the days with readings [kWh].
    covered_days, missing_days : float64 (meters, registers)
        Active days with and without readings [days].
    history_kwh_per_day : float64 (meters, registers)
        The meter's comparable-period average [kWh/day], NaN when unknown.
    area : float64 (meters,)
        Floor area of the unit the meter serves [m²]; 0 for non-unit meters.
    peer_group, building_group : int (meters,)
        Comparable-units group (the unit's parent node) and building; −1 for none.

    Raises
    ------
    EstimationError
        Days are missing and no method applies; names the meters.
    """
    need = missing_days > 0
    complete = ~(missing_days > 0).any(axis=1, keepdims=True) & (covered_days > 0)
    rate = np.zeros_like(measured_kwh)
    method = np.zeros(measured_kwh.shape, dtype=np.int8)
    candidates = (
        (Method.HISTORY, history_kwh_per_day),
        (
            Method.COMPARABLE_UNITS,
            _group_rate_per_m2(measured_kwh, covered_days, area, peer_group, complete),
        ),
        (
            Method.BUILDING_AVERAGE,
            _group_rate_per_m2(measured_kwh, covered_days, area, building_group, complete),
        ),
    )
    for label, candidate in candidates:
        take = need & (method == Method.NONE) & np.isfinite(candidate)
        rate[take] = candidate[take]
        method[take] = label
    unresolved = need & (method == Method.NONE)
    if unresolved.any():
        names = [
            f"{meter_ids[m]} {register_names[r]} ({missing_days[m, r]:g} days)"
            for m, r in np.argwhere(unresolved)[:5]
        ]
        raise EstimationError(
            "no estimation method applies (no history, no comparable unit, no building "
            f"average) for: {', '.join(names)}"
        )
    return rate, method
