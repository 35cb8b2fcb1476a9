"""Allocation keys (docs/domain.md §4): the rule a node allocates by and the weights of its key.

:class:`Basis` names the keys (area, usage, per unit, coefficient, blend, formula);
:class:`Rule` is a node's rule (key, loss cap, vacancy policy, common-area type ...);
:func:`basis_weights` gives a key's weights over the participants and slices of a pot;
:class:`KeyWeights` shares the weights of the keys that do not depend on a pot's energies
across the pots of a run. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from cloud.apportion.tree import TreeShape, rows


class Basis(StrEnum):
    """Allocation keys of docs/domain.md §4."""

    AREA = "area"
    USAGE = "usage"
    PER_UNIT = "per_unit"
    COEFFICIENT = "coefficient"
    BLEND = "blend"
    FORMULA = "formula"


class CommonType(StrEnum):
    """Common-area types: 必摊 mandatory, 协商 negotiated, 独用 exclusive."""

    MANDATORY = "mandatory"
    NEGOTIATED = "negotiated"
    EXCLUSIVE = "exclusive"


class VacantPolicy(StrEnum):
    """``landlord``: vacant days stay in the denominator, their share is the landlord's
    (docs/domain.md §4). ``redistribute``: vacant days leave the denominator."""

    LANDLORD = "landlord"
    REDISTRIBUTE = "redistribute"


@dataclass(frozen=True)
class Formula:
    """The seed's formula key: daily factor = clip((driver − base) ÷ span, 0, 1).

    Lobby air-conditioning: difference × floor-area share × (day's max temperature
    − 26 °C) ÷ 10. The factor is clipped to [0, 1] so that tenants never pay more than the
    difference; what is not passed on (cool days) stays with the landlord.
    """

    driver: str
    base: float = 26.0
    span: float = 10.0

    def factors(self, series: np.ndarray) -> np.ndarray:
        """Daily pass-on factor [1] from the driver's daily values (e.g. °C)."""
        return np.clip((series - self.base) / self.span, 0.0, 1.0)


@dataclass(frozen=True)
class Rule:
    """How a node allocates: its residual (main, branch) or its consumption (common).

    Node references are node indices. ``coefficients`` maps node → coefficient
    (coefficient basis); ``loss_cap`` is λ_cap (None: tenants carry all the residual);
    ``estimate_limit`` is the share of estimated kWh under the node above which the run is
    held (``on_estimate_excess = "hold"``) or the node falls back to the area key
    (``"area"``).
    """

    basis: Basis = Basis.AREA
    blend_p: float = 0.5
    coefficients: Mapping[int, float] = field(default_factory=dict)
    formula: Formula | None = None
    loss_cap: float | None = None
    vacant: VacantPolicy = VacantPolicy.LANDLORD
    estimate_limit: float = 0.1
    on_estimate_excess: str = "hold"
    common_type: CommonType | None = None
    exclusive_to: int = -1
    shared_by: tuple[int, ...] = ()


def basis_weights(
    basis: Basis,
    rule: Rule,
    members: np.ndarray,
    shape: TreeShape,
    usage: np.ndarray,
    slice_days: np.ndarray,
    formula_kwh: np.ndarray | None,
    vacant: np.ndarray | None = None,
) -> np.ndarray:
    """Weights (members, slices) of one allocation key.

    Parameters
    ----------
    usage : float64 (participants, slices)
        Each participant's own consumption in the pot [kWh].
    slice_days : int (slices,)
        Days of each slice; fixed keys (area, per unit, coefficient) count days, so that a
        tenant who moves in mid-period carries its days only.
    formula_kwh : float64 (slices,) or None
        Σ over the slice's days of difference × daily factor [kWh] (formula key).
    vacant : bool (members, slices) or None
        Vacant days that leave the key (the ``redistribute`` policy). A blend is taken over
        the remaining members only, so that among them the mix stays
        p × usage share + (1 − p) × area share; other keys are masked by the caller.

    Returns weights [m²·d, kWh, unit·d ...] whose scale does not matter, only ratios.
    """
    days = slice_days[None, :].astype(np.float64)
    area = rows(shape.area, members)[:, None]
    if basis is Basis.AREA:
        return area * days
    if basis is Basis.PER_UNIT:
        return np.ones((members.size, 1)) * days
    if basis is Basis.COEFFICIENT:
        coefficient = np.zeros(shape.kind.size)
        coefficient[list(rule.coefficients)] = list(rule.coefficients.values())
        return coefficient[rows(shape.participant, members)][:, None] * days
    if basis is Basis.USAGE:
        use = rows(usage, members)
        # max(use, 0) is use itself when no value carries a sign (−0.0 included): no copy
        return np.maximum(use, 0.0) if np.signbit(use).any() else use
    if basis is Basis.FORMULA:
        assert formula_kwh is not None
        return area * np.maximum(formula_kwh, 0.0)[None, :]
    area = area * days
    use = np.maximum(rows(usage, members), 0.0)
    if vacant is not None:
        area = np.where(vacant, 0.0, area)
        use = np.where(vacant, 0.0, use)
    area_total, use_total = area.sum(), use.sum()
    if use_total <= 0:
        return area
    if area_total <= 0:
        return use
    return rule.blend_p * use / use_total + (1.0 - rule.blend_p) * area / area_total


#: Keys whose weights do not depend on a pot's energies (only on areas, days, coefficients).
FIXED_BASES = frozenset({Basis.AREA, Basis.PER_UNIT, Basis.COEFFICIENT})


class KeyWeights:
    """The weights and weight total of the keys that do not depend on a pot's energies,
    computed by the first pot of a run that needs them and reused by the others (the
    arrays are shared by their line blocks, never written).

    Keyed by allocating node, component and the pot's slices.
    """

    def __init__(self) -> None:
        self._keys: dict[tuple[int, int, tuple[int, ...]], tuple[np.ndarray, float]] = {}

    def get(
        self, key: tuple[int, int, tuple[int, ...]], compute: Callable[[], tuple[np.ndarray, float]]
    ) -> tuple[np.ndarray, float]:
        """The weights [m²·d, unit·d ...] and their total for ``key``, computed on first
        use."""
        if key not in self._keys:
            self._keys[key] = compute()
        return self._keys[key]


def exclusive_weights(kwh: np.ndarray, slice_days: np.ndarray) -> np.ndarray:
    """The one unit's weight per slice for an exclusive common meter (1, slices): the
    meter's own kWh, or the slices' days when it measured nothing."""
    weights = np.maximum(kwh, 0.0)[None, :]
    if weights.sum() <= 0:
        return slice_days[None, :].astype(np.float64)
    return weights
