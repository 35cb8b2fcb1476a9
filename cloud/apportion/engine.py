"""The apportionment engine: register arrays in, cent lines out (DOMAIN.md §4).

:func:`apportion` is a pure function of :class:`EngineInputs` (numpy arrays and small
frozen dataclasses; no database, no I/O):

1. consumption per meter and slice — multipliers, rollover, replacement (each installation
   is its own row with its own multiplier), gaps (:mod:`~cloud.apportion.consumption`);
2. estimation of missing days in the fixed order (:mod:`~cloud.apportion.estimation`);
3. node energies, residual and loss rate per node, estimated share per node;
4. pots: the bill per register and tariff version (:mod:`~cloud.apportion.money`);
5. allocation of each pot down the tree (:mod:`~cloud.apportion.allocation`);
6. largest-remainder rounding once per pot (:mod:`~cloud.apportion.rounding`), with
   conservation checked at every node and per pot to the cent;
7. flags: which hold the run (negative residual, estimates over the limit, implausible
   rollover, negative usage, a markup on resold power) and which are shown only.

The period is cut into *slices* at every date where something changes (tariff version,
occupancy, installation, multiplier); everything inside a slice is uniform.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from cloud.apportion.allocation import (
    LANDLORD,
    VACANT,
    Basis,
    Component,
    NodeKind,
    Rule,
    Segments,
    Step,
    TreeShape,
    allocate_pot,
)
from cloud.apportion.consumption import (
    days_per_slice,
    screen_registers,
    slice_energy,
    unwrap_registers,
)
from cloud.apportion.errors import CaseError, ConservationError
from cloud.apportion.estimation import Method, estimation_rates
from cloud.apportion.money import DEMAND, Bill, Pot, TariffKind, TariffVersion, make_pots
from cloud.apportion.rounding import largest_remainder


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


@dataclass(frozen=True)
class Flag:
    """Something a reviewer must see; ``holds`` keeps the run from being approved."""

    code: str
    subject: str
    message: str
    holds: bool


@dataclass(frozen=True)
class Lines:
    """Rounded lines, one row each, in pot order then the pot's stable line order.

    ``segment`` indexes :class:`Segments` (−1: a landlord line of ``origin``); ``origin``
    is the allocating node (−1 for own use); ``kwh`` the energy the line stands for;
    ``weight`` its key weight; ``ideal`` full-precision cents; ``cents`` the rounded ones.
    """

    pot: np.ndarray
    segment: np.ndarray
    component: np.ndarray
    origin: np.ndarray
    kwh: np.ndarray
    weight: np.ndarray
    ideal: np.ndarray
    cents: np.ndarray

    def __len__(self) -> int:
        return int(self.cents.size)


@dataclass(frozen=True)
class EngineResult:
    """A computed run: pots, lines, the energies behind them and the flags."""

    inputs: EngineInputs
    shape: TreeShape
    segments: Segments
    pots: tuple[Pot, ...]
    lines: Lines
    steps: tuple[Step, ...]
    node_amount: np.ndarray
    node_kwh: np.ndarray
    measured_kwh: np.ndarray
    estimated_kwh: np.ndarray
    estimation_method: np.ndarray
    residual_kwh: np.ndarray
    loss_rate: np.ndarray
    estimated_share: np.ndarray
    flags: tuple[Flag, ...]

    @property
    def held(self) -> bool:
        return any(f.holds for f in self.flags)

    def party(self) -> np.ndarray:
        """Per line: tenant index, or −1 for the landlord."""
        occupant = np.where(self.lines.segment >= 0,
                            self.segments.occupant[np.maximum(self.lines.segment, 0)], LANDLORD)
        return np.where(occupant >= 0, occupant, -1)


def _meter_consumption(inputs: EngineInputs) -> tuple[np.ndarray, np.ndarray, list[Flag]]:
    """Measured kWh (meters, slices, registers) and missing days per slice; flags."""
    meters, period = inputs.meters, inputs.period
    bp = period.breakpoints
    full = (meters.active_from == 0) & (meters.active_to == period.days)
    fast = screen_registers(meters.registers) & full
    at_bp = meters.registers[:, bp, :]
    missing = np.zeros((len(meters.ids), bp.size - 1, len(inputs.registers)))
    flags: list[Flag] = []
    slow = np.flatnonzero(~fast)
    if slow.size:
        unwrapped = _unwrap(inputs, slow)
        at_bp[slow] = unwrapped.values[:, bp, :]
        missing[slow] = days_per_slice(unwrapped.missing.astype(np.float64), bp)
        cut = unwrapped.interpolated[:, bp[1:-1]].any(axis=1)
        for row, name in ((unwrapped.rollover, "rollover"),
                          (unwrapped.implausible, "rollover_implausible"),
                          (cut, "prorated")):
            for m in slow[row]:
                flags.append(_meter_flag(name, meters.ids[m]))
    return slice_energy(at_bp, meters.multiplier), missing, flags


def _unwrap(inputs: EngineInputs, rows: np.ndarray):  # type: ignore[no-untyped-def]
    meters = inputs.meters
    mean_multiplier = meters.multiplier[rows].mean(axis=1)
    return unwrap_registers(
        meters.registers[rows],
        capacity=meters.capacity[rows],
        bidirectional=meters.bidirectional[rows],
        average_per_day=meters.history_kwh_per_day[rows] / mean_multiplier[:, None],
        active_from=meters.active_from[rows],
        active_to=meters.active_to[rows],
        plausibility=inputs.policy.rollover_plausibility,
        meter_ids=[meters.ids[m] for m in rows],
        register_names=inputs.registers,
        first_day=inputs.period.first_day,
    )


_METER_FLAGS = {
    "rollover": (False, "register rolled over at its capacity; the wrap is plausible"),
    "rollover_implausible": (True, "register dropped and a rollover is implausible against "
                             "the meter's average daily use; the days were estimated"),
    "prorated": (False, "no reading where the period is cut (tariff version, occupancy ...): "
                 "consumption split by days between the readings around it"),
}


def _meter_flag(code: str, meter: str) -> Flag:
    holds, text = _METER_FLAGS[code]
    return Flag(code, f"meter {meter}", text, holds)


def _estimate(inputs: EngineInputs, measured: np.ndarray, missing: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Flag]]:
    """Estimated kWh (meters, slices, registers), rate [kWh/day] and method (meters,
    registers)."""
    meters, tree = inputs.meters, inputs.tree
    shape = measured.shape
    if not missing.any():
        nothing = np.zeros((shape[0], shape[2]))
        return np.zeros(shape), nothing, nothing.astype(np.int8), []
    active_days = np.clip(
        np.minimum(meters.active_to[:, None], inputs.period.breakpoints[None, 1:])
        - np.maximum(meters.active_from[:, None], inputs.period.breakpoints[None, :-1]),
        0, None).sum(axis=1)
    missing_days = missing.sum(axis=1)
    node = meters.node
    is_unit = tree.kind[node] == NodeKind.UNIT
    rate, method = estimation_rates(
        measured_kwh=measured.sum(axis=1),
        covered_days=active_days[:, None] - missing_days,
        missing_days=missing_days,
        history_kwh_per_day=meters.history_kwh_per_day,
        area=np.where(is_unit, tree.area[node], 0.0),
        peer_group=np.where(is_unit, tree.parent[node], -1),
        building_group=np.where(is_unit, tree.building[node], -1),
        meter_ids=meters.ids,
        register_names=inputs.registers,
    )
    flags = [
        Flag("estimated", f"meter {meters.ids[m]}",
             f"{missing_days[m].max():g} days without readings estimated by "
             f"{Method(int(method[m].max())).label}", False)
        for m in np.flatnonzero(method.any(axis=1))
    ]
    return rate[:, None, :] * missing, rate, method, flags


def _node_energy(inputs: EngineInputs, shape: TreeShape, meter_kwh: np.ndarray) -> np.ndarray:
    """kWh (nodes, slices, registers): Σ of each node's meters; a node without a meter
    (a virtual branch) holds the sum of its children."""
    nodes = len(inputs.tree.ids)
    _, slices, nreg = meter_kwh.shape
    energy = _sum_by(inputs.meters.node, meter_kwh, nodes).reshape(nodes, slices * nreg)
    metered = np.bincount(inputs.meters.node, minlength=nodes) > 0
    virtual = ~metered & ((shape.kind == NodeKind.BRANCH) | (shape.kind == NodeKind.MAIN))
    if virtual.any():
        for level in reversed(shape.levels):
            into = virtual[shape.parent[level]]
            if into.any():
                np.add.at(energy, shape.parent[level][into], energy[level[into]])
    return energy.reshape(nodes, slices, nreg)


def _daily_node_energy(inputs: EngineInputs, nodes: list[int], rate: np.ndarray
                       ) -> dict[int, np.ndarray]:
    """kWh per day (days, registers) of ``nodes`` (their meters, estimates included;
    a node without a meter sums its children). For the formula key only: few nodes."""
    meters, period, tree = inputs.meters, inputs.period, inputs.tree
    wanted: set[int] = set()

    def close(node: int) -> None:
        wanted.add(node)
        if not (meters.node == node).any():
            for child in np.flatnonzero(tree.parent == node):
                close(int(child))

    for node in nodes:
        close(node)
    rows = np.flatnonzero(np.isin(meters.node, sorted(wanted)))
    daily: dict[int, np.ndarray] = {n: np.zeros((period.days, len(inputs.registers)))
                                    for n in wanted}
    if rows.size:
        unwrapped = _unwrap(inputs, rows)
        slice_of_day = np.searchsorted(period.breakpoints, np.arange(period.days), "right") - 1
        multiplier = meters.multiplier[rows][:, slice_of_day]
        kwh = np.diff(unwrapped.values, axis=1) * multiplier[:, :, None]
        kwh += rate[rows][:, None, :] * unwrapped.missing
        for i, m in enumerate(rows):
            daily[int(meters.node[m])] += kwh[i]

    def total(node: int) -> np.ndarray:
        if (meters.node == node).any():
            return daily[node]
        return sum((total(int(c)) for c in np.flatnonzero(tree.parent == node)),
                   start=np.zeros((period.days, len(inputs.registers))))

    return {n: total(n) for n in nodes}


def _formula_inputs(inputs: EngineInputs, shape: TreeShape, basis: tuple[Basis, ...],
                    rate: np.ndarray) -> dict[int, np.ndarray]:
    """Per formula node: Σ over each slice's days of difference × factor, (slices, regs).

    The difference is the common meter's consumption (common node) or the residual node −
    Σ children (main, branch), per day.
    """
    tree, period = inputs.tree, inputs.period
    formula_nodes = [n for n, b in enumerate(basis) if b is Basis.FORMULA]
    if not formula_nodes:
        return {}
    needed = set(formula_nodes)
    for n in formula_nodes:
        if shape.kind[n] != NodeKind.COMMON:
            needed.update(int(c) for c in np.flatnonzero(tree.parent == n))
    daily = _daily_node_energy(inputs, sorted(needed), rate)
    out: dict[int, np.ndarray] = {}
    for n in formula_nodes:
        rule = tree.rules[n]
        assert rule is not None and rule.formula is not None
        difference = daily[n].copy()
        if shape.kind[n] != NodeKind.COMMON:
            for c in np.flatnonzero(tree.parent == n):
                difference -= daily[int(c)]
        factor = rule.formula.factors(inputs.drivers[rule.formula.driver])
        out[n] = days_per_slice((difference * factor[:, None])[None], period.breakpoints)[0]
    return out


def _effective_basis(inputs: EngineInputs, estimated_share: np.ndarray
                     ) -> tuple[tuple[Basis, ...], list[Flag]]:
    """Each node's key, falling back to area when estimates pass the limit and the rule
    says so; otherwise a holding flag (DOMAIN.md §4, missing readings)."""
    flags: list[Flag] = []
    basis: list[Basis] = []
    for n, rule in enumerate(inputs.tree.rules):
        if rule is None:
            basis.append(Basis.AREA)
            continue
        chosen = rule.basis
        share = float(estimated_share[n])
        if share > rule.estimate_limit:
            subject = f"node {inputs.tree.ids[n]}"
            text = (f"estimated kWh are {share:.1%} of the use under the node, above the limit "
                    f"{rule.estimate_limit:.1%}")
            if rule.on_estimate_excess == "area":
                chosen = Basis.AREA
                flags.append(Flag("area_fallback", subject, text + "; allocated by area", False))
            else:
                flags.append(Flag("estimates_over_limit", subject, text, True))
        basis.append(chosen)
    return tuple(basis), flags


def _scope(shape: TreeShape, node: int, rule: Rule) -> np.ndarray:
    """Participants a node allocates over: below it (main, branch), below its parent or
    its ``shared_by`` list (common)."""
    if shape.kind[node] != NodeKind.COMMON:
        return shape.members(node)
    if rule.shared_by:
        return np.sort(shape.participant_of[list(rule.shared_by)])
    return shape.members(int(shape.parent[node]))


def _estimated_share(inputs: EngineInputs, shape: TreeShape, measured: np.ndarray,
                     estimated: np.ndarray) -> np.ndarray:
    """Per node: estimated ÷ total kWh of the participants it allocates over."""
    nodes = len(inputs.tree.ids)
    share = np.zeros(nodes)
    if not estimated.any():
        return share
    est = np.bincount(inputs.meters.node, weights=estimated.sum(axis=(1, 2)), minlength=nodes)
    tot = est + np.bincount(inputs.meters.node, weights=measured.sum(axis=(1, 2)),
                            minlength=nodes)
    for n, rule in enumerate(inputs.tree.rules):
        if rule is None:
            continue
        below = shape.participant[_scope(shape, n, rule)]
        total = tot[below].sum()
        share[n] = est[below].sum() / total if total > 0 else 0.0
    return share


def _sum_by(index: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """Σ of ``values`` rows (rows, ...) grouped by ``index`` into ``size`` rows."""
    flat = values.reshape(values.shape[0], -1)
    out = np.empty((size, flat.shape[1]))
    for column in range(flat.shape[1]):
        out[:, column] = np.bincount(index, weights=flat[:, column], minlength=size)
    return out.reshape((size, *values.shape[1:]))


def _tariff_flags(inputs: EngineInputs) -> list[Flag]:
    """China resale rule (no markup) and the peak:valley ratio check (DOMAIN.md §4)."""
    flags = []
    policy = inputs.policy
    for v in inputs.tariffs:
        if v.markup > policy.markup_cap:
            flags.append(Flag("markup_over_cap", f"tariff {v.id}",
                              f"markup {v.markup} CNY/kWh over catalog exceeds the cap "
                              f"{policy.markup_cap}; resold grid power is billed at the "
                              "catalog price", True))
        if v.kind in (TariffKind.TOU, TariffKind.TWO_PART) and {"T2", "T4"} <= set(v.prices):
            valley = v.prices["T4"]
            if valley > 0 and float(v.prices["T2"] / valley) < policy.tou_min_ratio:
                flags.append(Flag("tou_ratio_low", f"tariff {v.id}",
                                  f"peak:valley {float(v.prices['T2'] / valley):.2f}:1 is "
                                  f"below {policy.tou_min_ratio:g}:1; check the prices", False))
    return flags


def _pot_flags(pots: list[Pot], policy: Policy) -> list[Flag]:
    flags = []
    for pot in pots:
        if pot.catalog_cents is None:
            continue
        gap = pot.cents - pot.catalog_cents
        if abs(gap) > policy.catalog_tolerance * max(pot.catalog_cents, 1):
            flags.append(Flag("bill_differs_from_catalog", f"pot {pot.register}/{pot.version}",
                              f"bill {pot.cents / 100:.2f} CNY, catalog price of the main "
                              f"meter's use {pot.catalog_cents / 100:.2f} CNY", False))
    return flags


def _round_pot(pot: Pot, blocks: list) -> dict[str, np.ndarray]:  # type: ignore[type-arg]
    columns = {
        "segment": np.concatenate([b.segment for b in blocks]),
        "component": np.concatenate([b.component for b in blocks]),
        "origin": np.concatenate([np.full(b.segment.size, b.origin) for b in blocks]),
        "kwh": np.concatenate([b.kwh for b in blocks]),
        "weight": np.concatenate([b.weight for b in blocks]),
        "ideal": np.concatenate([b.ideal for b in blocks]),
    }
    columns["cents"] = largest_remainder(pot.cents, columns["ideal"])
    if int(columns["cents"].sum()) != pot.cents:
        raise ConservationError(f"pot {pot.register}/{pot.version}: lines sum to "
                                f"{int(columns['cents'].sum())} cents, the bill to {pot.cents}")
    keep = (columns["cents"] != 0) | (columns["ideal"] != 0) | (columns["kwh"] != 0)
    columns = {k: v[keep] for k, v in columns.items()}
    columns["pot"] = np.full(columns["cents"].size, pot.index)
    return columns


def apportion(inputs: EngineInputs) -> EngineResult:
    """Compute a run: consumption → estimation → residual → allocation → cents.

    Returns lines whose cents sum exactly to every pot of the bill; the flags say whether
    the run is held. Raises an :class:`~cloud.apportion.errors.ApportionError` subclass
    for inputs that cannot be computed (decreasing register, no estimation method,
    conservation violated).
    """
    tree, period = inputs.tree, inputs.period
    if inputs.meters.registers.shape[1] != period.days + 1:
        raise CaseError(f"registers cover {inputs.meters.registers.shape[1]} boundaries; the "
                        f"period has {period.days} days, so {period.days + 1} are needed")
    shape = TreeShape.build(tree.kind, tree.parent, tree.area)
    measured, missing, flags = _meter_consumption(inputs)
    estimated, rate, method, estimate_flags = _estimate(inputs, measured, missing)
    flags += estimate_flags
    meter_kwh = measured + estimated
    node_kwh = _node_energy(inputs, shape, meter_kwh)
    estimated_share = _estimated_share(inputs, shape, measured, estimated)
    basis, basis_flags = _effective_basis(inputs, estimated_share)
    flags += basis_flags
    formula_kwh = _formula_inputs(inputs, shape, basis, rate)

    root = int(np.flatnonzero(tree.parent < 0)[0])
    pots = make_pots(inputs.bill, inputs.tariffs, inputs.registers, node_kwh[root],
                     period.breakpoints)
    occupant = inputs.occupant[shape.participant]
    occupant = np.where(shape.kind[shape.participant][:, None] == NodeKind.LANDLORD,
                        LANDLORD, occupant)
    segments = Segments.build(occupant)
    slice_days = period.slice_days
    all_steps: list[Step] = []
    node_amount = np.zeros((len(pots), len(tree.ids)))
    negative = np.zeros(len(tree.ids), dtype=bool)
    over_cap = np.zeros(len(tree.ids), dtype=bool)
    rounded = []
    for pot in pots:
        sl = np.array(pot.slices, dtype=np.int64)
        if pot.register == DEMAND:
            pot_kwh = node_kwh[:, sl, :].sum(axis=2)
            pot_formula = {n: f[sl].sum(axis=1) for n, f in formula_kwh.items()}
        else:
            r = inputs.registers.index(pot.register)
            pot_kwh = node_kwh[:, sl, r]
            pot_formula = {n: f[sl, r] for n, f in formula_kwh.items()}
        allocation = allocate_pot(
            pot_index=pot.index, pot_cents=pot.cents, node_kwh=pot_kwh, shape=shape,
            rules=tree.rules, basis=basis, segments=segments, slices=sl,
            slice_days=slice_days[sl], formula_kwh=pot_formula,
            by_area_only=pot.register == DEMAND and inputs.policy.demand_basis == "area",
        )
        negative |= allocation.negative_residual
        over_cap |= allocation.over_cap
        node_amount[pot.index] = allocation.amount
        all_steps += allocation.steps
        rounded.append(_round_pot(pot, allocation.blocks))
    lines = Lines(**{k: np.concatenate([c[k] for c in rounded]) for k in rounded[0]})

    energy = node_kwh.sum(axis=1)
    nonroot = tree.parent >= 0
    children = _sum_by(tree.parent[nonroot], energy[nonroot], len(tree.ids))
    inner = (shape.kind == NodeKind.MAIN) | (shape.kind == NodeKind.BRANCH)
    residual = np.where(inner[:, None], energy - children, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        loss_rate = np.where(energy.sum(axis=1) > 0, residual.sum(axis=1) / energy.sum(axis=1),
                             0.0)
    flags += _node_flags(inputs, negative, over_cap, loss_rate, residual)
    flags += _tariff_flags(inputs) + _pot_flags(pots, inputs.policy)
    part_kwh = energy[shape.participant].sum(axis=1)
    for p in np.flatnonzero(part_kwh < 0):
        flags.append(Flag("negative_usage", f"node {tree.ids[shape.participant[p]]}",
                          f"net consumption {part_kwh[p]:.2f} kWh is negative (export)", True))
    return EngineResult(
        inputs=inputs, shape=shape, segments=segments, pots=tuple(pots), lines=lines,
        steps=tuple(all_steps), node_amount=node_amount, node_kwh=node_kwh,
        measured_kwh=measured, estimated_kwh=estimated, estimation_method=method,
        residual_kwh=residual, loss_rate=loss_rate, estimated_share=estimated_share,
        flags=tuple(flags),
    )


def _node_flags(inputs: EngineInputs, negative: np.ndarray, over_cap: np.ndarray,
                loss_rate: np.ndarray, residual: np.ndarray) -> list[Flag]:
    flags = []
    for n in np.flatnonzero(negative):
        flags.append(Flag("negative_residual", f"node {inputs.tree.ids[n]}",
                          f"children measure more than the node ({residual[n].sum():.2f} kWh, "
                          f"λ = {loss_rate[n]:.2%}); never passed on silently", True))
    for n in np.flatnonzero(over_cap):
        rule = inputs.tree.rules[n]
        cap = rule.loss_cap if rule is not None and rule.loss_cap is not None else 0.0
        flags.append(Flag("loss_over_cap", f"node {inputs.tree.ids[n]}",
                          f"loss rate λ = {loss_rate[n]:.2%} is above the cap {cap:.2%}; "
                          "the excess is the landlord's", False))
    return flags


__all__ = [
    "LANDLORD",
    "VACANT",
    "Component",
    "EngineInputs",
    "EngineResult",
    "Flag",
    "Lines",
    "MeterInputs",
    "Period",
    "Policy",
    "TreeInputs",
    "apportion",
]
