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

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property

import numpy as np

from cloud.apportion.allocation import (
    LANDLORD,
    VACANT,
    Basis,
    Component,
    LineBlock,
    NodeKind,
    PotAllocation,
    Rule,
    Segments,
    Step,
    TreeShape,
    allocate_pot,
    rows,
)
from cloud.apportion.consumption import (
    Unwrapped,
    days_per_slice,
    fast_slice_energy,
    slice_energy,
    unwrap_registers,
)
from cloud.apportion.errors import CaseError
from cloud.apportion.estimation import Method, estimation_rates
from cloud.apportion.money import DEMAND, Bill, Pot, TariffKind, TariffVersion, make_pots
from cloud.apportion.rounding import largest_remainder_parts


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
    """Rounded lines, in pot order then each pot's stable line order (the tie-break key).

    Held as the allocation's blocks (one pot, one origin, one component each) so that a
    million-line run is never copied; the flat per-line columns are joined on first use:
    ``pot``, ``segment`` (index into :class:`Segments`, −1 for a landlord line of
    ``origin``), ``component``, ``origin`` (allocating node, −1 for own use), ``kwh`` (the
    energy the line stands for), ``weight`` (its key weight), ``ideal`` (full-precision
    cents) and ``cents``.
    """

    blocks: tuple[LineBlock, ...]

    def __len__(self) -> int:
        return sum(len(b) for b in self.blocks)

    def _join(self, column: str) -> np.ndarray:
        return np.concatenate([getattr(b, column) for b in self.blocks])

    def _spread(self, values: list[int], dtype: type) -> np.ndarray:
        return np.repeat(np.array(values, dtype=dtype), [len(b) for b in self.blocks])

    @cached_property
    def pot(self) -> np.ndarray:
        return self._spread([b.pot for b in self.blocks], np.int64)

    @cached_property
    def origin(self) -> np.ndarray:
        return self._spread([b.origin for b in self.blocks], np.int64)

    @cached_property
    def component(self) -> np.ndarray:
        return np.concatenate([np.full(len(b), b.component, dtype=np.int8)
                               if isinstance(b.component, int) else b.component
                               for b in self.blocks])

    @cached_property
    def segment(self) -> np.ndarray:
        return self._join("segment")

    @cached_property
    def kwh(self) -> np.ndarray:
        return np.concatenate([b.energy for b in self.blocks])

    @cached_property
    def weight(self) -> np.ndarray:
        return self._join("weight")

    @cached_property
    def ideal(self) -> np.ndarray:
        return self._join("ideal")

    @cached_property
    def cents(self) -> np.ndarray:
        return self._join("cents")

    def pot_cents(self, pots: int) -> list[int]:
        """Σ cents per pot, straight from the blocks."""
        totals = [0] * pots
        for b in self.blocks:
            assert b.cents is not None
            totals[b.pot] += int(b.cents.sum())
        return totals


@dataclass(frozen=True)
class EngineResult:
    """A computed run: pots, lines, the energies behind them and the flags."""

    inputs: EngineInputs
    shape: TreeShape
    segments: Segments
    pots: tuple[Pot, ...]
    lines: Lines
    steps: tuple[Step, ...]
    node_amount: tuple[np.ndarray, ...]
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


def _meter_consumption(inputs: EngineInputs
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Flag]]:
    """Measured kWh (meters, slices, registers); the repaired rows and their missing days
    per slice (rows, slices, registers); flags."""
    meters, period = inputs.meters, inputs.period
    bp = period.breakpoints
    full = (meters.active_from == 0) & (meters.active_to == period.days)
    screened, measured = fast_slice_energy(meters.registers, bp, meters.multiplier)
    slow = np.flatnonzero(~(screened & full))
    missing = np.zeros((slow.size, bp.size - 1, len(inputs.registers)))
    flags: list[Flag] = []
    if slow.size:
        unwrapped = _unwrap(inputs, slow)
        measured[slow] = slice_energy(unwrapped.values[:, bp, :], meters.multiplier[slow])
        missing[:] = days_per_slice(unwrapped.missing.astype(np.float64), bp)
        cut = unwrapped.interpolated[:, bp[1:-1]].any(axis=1)
        for row, name in ((unwrapped.rollover, "rollover"),
                          (unwrapped.implausible, "rollover_implausible"),
                          (cut, "prorated")):
            if row.any():
                flags.append(_meter_flag(name, meters.ids, slow[row]))
    return measured, slow, missing, flags


def _unwrap(inputs: EngineInputs, rows: np.ndarray) -> Unwrapped:
    """:func:`unwrap_registers` on some meters of the inputs."""
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


def _meters_named(ids: tuple[str, ...], rows: np.ndarray, most: int = 5) -> str:
    """``meter U1`` / ``meters U1, U2, U3`` / ``meters U1, … (1234 meters)``."""
    names = [ids[m] for m in rows[:most]]
    if rows.size == 1:
        return f"meter {names[0]}"
    more = f", … ({rows.size} meters)" if rows.size > most else ""
    return f"meters {', '.join(names)}{more}"


def _meter_flag(code: str, ids: tuple[str, ...], rows: np.ndarray) -> Flag:
    """One flag for every meter it concerns."""
    holds, text = _METER_FLAGS[code]
    return Flag(code, _meters_named(ids, rows), text, holds)


def _estimate(inputs: EngineInputs, measured: np.ndarray, slow: np.ndarray,
              slow_missing: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Flag]]:
    """Estimated kWh (meters, slices, registers), rate [kWh/day] and method (meters,
    registers). Without any missing day these are zeros that are never written (no
    memory is touched for them)."""
    meters, tree = inputs.meters, inputs.tree
    shape = measured.shape
    if not slow_missing.any():
        return (np.zeros(shape), np.zeros((shape[0], shape[2])),
                np.zeros((shape[0], shape[2]), dtype=np.int8), [])
    missing = np.zeros(shape)
    missing[slow] = slow_missing
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
    flags = []
    for label in Method:
        rows = np.flatnonzero((method == label).any(axis=1)) if label else np.zeros(0, int)
        if rows.size:
            flags.append(Flag("estimated", _meters_named(meters.ids, rows),
                              f"days without readings estimated by {label.label} "
                              f"({missing_days[rows].sum():g} meter-register-days)", False))
    return rate[:, None, :] * missing, rate, method, flags


def _node_energy(inputs: EngineInputs, shape: TreeShape, meter_kwh: np.ndarray) -> np.ndarray:
    """kWh (nodes, slices, registers): Σ of each node's meters; a node without a meter
    (a virtual branch) holds the sum of its children."""
    nodes = len(inputs.tree.ids)
    _, slices, nreg = meter_kwh.shape
    node = inputs.meters.node
    metered = np.bincount(node, minlength=nodes) > 0
    virtual = ~metered & ((shape.kind == NodeKind.BRANCH) | (shape.kind == NodeKind.MAIN))
    if node.size == nodes and (node[1:] > node[:-1]).all():
        # one meter per node, in node order (the bulk case): the meters' array as it is
        energy = meter_kwh.reshape(nodes, slices * nreg)
        if virtual.any():
            energy = energy.copy()
    else:
        energy = _sum_by(node, meter_kwh, nodes).reshape(nodes, slices * nreg)
    if virtual.any():
        for level in reversed(shape.levels):
            into = virtual[shape.parent[level]]
            if into.any():
                np.add.at(energy, shape.parent[level][into], energy[level[into]])
    return energy.reshape(nodes, slices, nreg)


def _difference_signs(inputs: EngineInputs, node: int) -> np.ndarray:
    """Per meter: +1 if it measures ``node``, −1 if it measures one of its children (or
    a child without a meter, through its descendants), 0 otherwise; so that Σ sign × use
    is the node's residual (main, branch) or its own use (common)."""
    meters, parent = inputs.meters, inputs.tree.parent
    metered = np.bincount(meters.node, minlength=parent.size) > 0
    sign = np.where(meters.node == node, 1, 0)
    if inputs.tree.kind[node] == NodeKind.COMMON:
        return sign
    # walk every meter up its ancestors: it counts for a child of the node when the node
    # is reached before any other metered node
    at = meters.node.copy()
    open_ = at != node
    while open_.any():
        up = np.where(open_, parent[np.maximum(at, 0)], -1)
        reached = open_ & (up == node)
        sign[reached] = -1
        open_ &= (up >= 0) & ~reached & ~metered[np.maximum(up, 0)]
        at = up
    return sign


def _formula_inputs(inputs: EngineInputs, shape: TreeShape, basis: Mapping[int, Basis],
                    rate: np.ndarray) -> dict[int, np.ndarray]:
    """Per formula node: Σ over each slice's days of difference × factor, (slices, regs).

    The difference is, per day, the common meter's consumption (common node) or the
    node's residual, node − Σ children (main, branch: "main difference"), estimates
    included; the days come from the meters' daily readings (interpolated in gaps).
    """
    tree, period, meters = inputs.tree, inputs.period, inputs.meters
    out: dict[int, np.ndarray] = {}
    slice_of_day = np.searchsorted(period.breakpoints, np.arange(period.days), "right") - 1
    for n in (n for n, b in basis.items() if b is Basis.FORMULA):
        rule = tree.rules[n]
        assert rule is not None and rule.formula is not None
        sign = _difference_signs(inputs, n)
        rows = np.flatnonzero(sign)
        difference = np.zeros((period.days, len(inputs.registers)))
        if rows.size:
            unwrapped = _unwrap(inputs, rows)
            kwh = np.diff(unwrapped.values, axis=1) * meters.multiplier[rows][
                :, slice_of_day][:, :, None]
            kwh += rate[rows][:, None, :] * unwrapped.missing
            difference = np.tensordot(sign[rows].astype(np.float64), kwh, axes=1)
        factor = rule.formula.factors(inputs.drivers[rule.formula.driver])
        out[n] = days_per_slice((difference * factor[:, None])[None], period.breakpoints)[0]
    return out


def _ruled(inputs: EngineInputs) -> list[int]:
    """Nodes that allocate (main, branch, common): the few with a rule."""
    kind = inputs.tree.kind
    mask = (kind == NodeKind.MAIN) | (kind == NodeKind.BRANCH) | (kind == NodeKind.COMMON)
    return [int(n) for n in np.flatnonzero(mask)]


def _effective_basis(inputs: EngineInputs, estimated_share: np.ndarray
                     ) -> tuple[dict[int, Basis], list[Flag]]:
    """Each allocating node's key, falling back to area when estimates pass the limit and
    the rule says so; otherwise a holding flag (DOMAIN.md §4, missing readings)."""
    flags: list[Flag] = []
    basis: dict[int, Basis] = {}
    for n in _ruled(inputs):
        rule = inputs.tree.rules[n] or Rule()
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
        basis[n] = chosen
    return basis, flags


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
    for n in _ruled(inputs):
        below = shape.participant[_scope(shape, n, inputs.tree.rules[n] or Rule())]
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


def _round_pot(pot: Pot, allocation: PotAllocation) -> None:
    """Round the pot once (largest remainder over all its lines in their stable order)
    and keep each block's cents on the block."""
    cents = largest_remainder_parts(pot.cents, [b.ideal for b in allocation.blocks])
    for block, rounded in zip(allocation.blocks, cents, strict=True):
        block.pot, block.cents = pot.index, rounded


#: Participant-pots from which pots are allocated on several threads.
PARALLEL_LINES = 200_000


def _map(fn: Callable[[Pot], PotAllocation], pots: list[Pot], *,
         parallel: bool) -> list[PotAllocation]:
    workers = min(len(pots), os.cpu_count() or 1)
    if not parallel or workers < 2:
        return [fn(pot) for pot in pots]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, pots))


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
    measured, slow, slow_missing, flags = _meter_consumption(inputs)
    estimated, rate, method, estimate_flags = _estimate(inputs, measured, slow, slow_missing)
    flags += estimate_flags
    meter_kwh = measured + estimated if method.any() else measured
    node_kwh = _node_energy(inputs, shape, meter_kwh)
    estimated_share = _estimated_share(inputs, shape, measured, estimated)
    basis, basis_flags = _effective_basis(inputs, estimated_share)
    flags += basis_flags
    formula_kwh = _formula_inputs(inputs, shape, basis, rate)

    root = int(np.flatnonzero(tree.parent < 0)[0])
    pots = make_pots(inputs.bill, inputs.tariffs, inputs.registers, node_kwh[root],
                     period.breakpoints)
    occupant = rows(inputs.occupant, shape.participant)
    landlord = rows(shape.kind, shape.participant) == NodeKind.LANDLORD
    if landlord.any():
        occupant = np.where(landlord[:, None], LANDLORD, occupant)
    segments = Segments.build(occupant)
    slice_days = period.slice_days
    own_component = np.where(landlord, Component.LANDLORD_LOAD,
                             Component.OWN_USE).astype(np.int8)

    def allocate_and_round(pot: Pot) -> PotAllocation:
        sl = np.array(pot.slices, dtype=np.int64)
        # the pot's slices are consecutive (one tariff version): a view, not a copy
        window = slice(int(sl[0]), int(sl[-1]) + 1)
        if pot.register == DEMAND:
            pot_kwh = node_kwh[:, window, :].sum(axis=2)
            pot_formula = {n: f[window].sum(axis=1) for n, f in formula_kwh.items()}
        else:
            r = inputs.registers.index(pot.register)
            pot_kwh = np.ascontiguousarray(node_kwh[:, window, r])
            pot_formula = {n: f[window, r] for n, f in formula_kwh.items()}
        allocation = allocate_pot(
            pot_index=pot.index, pot_cents=pot.cents, node_kwh=pot_kwh, shape=shape,
            rules=tree.rules, basis=basis, segments=segments, slices=sl,
            slice_days=slice_days[sl], formula_kwh=pot_formula, own_component=own_component,
            by_area_only=pot.register == DEMAND and inputs.policy.demand_basis == "area",
        )
        _round_pot(pot, allocation)
        return allocation

    # pots are independent: large runs use the machine's cores (numpy releases the GIL),
    # results come back in pot order, so the output does not depend on scheduling
    allocations = _map(allocate_and_round, pots,
                       parallel=shape.participant.size * len(pots) >= PARALLEL_LINES)
    lines = Lines(tuple(b for a in allocations for b in a.blocks))
    negative = np.logical_or.reduce([a.negative_residual for a in allocations])
    over_cap = np.logical_or.reduce([a.over_cap for a in allocations])

    energy = node_kwh[:, 0, :] if node_kwh.shape[1] == 1 else node_kwh.sum(axis=1)
    children = shape.sum_children(energy)
    inner = np.flatnonzero((shape.kind == NodeKind.MAIN) | (shape.kind == NodeKind.BRANCH))
    residual = np.zeros_like(energy)
    residual[inner] = energy[inner] - children[inner]
    loss_rate = np.zeros(len(tree.ids))
    total = energy[inner].sum(axis=1)
    loss_rate[inner] = np.divide(residual[inner].sum(axis=1), total,
                                 out=np.zeros_like(total), where=total > 0)
    flags += _node_flags(inputs, negative, over_cap, loss_rate, residual)
    flags += _tariff_flags(inputs) + _pot_flags(pots, inputs.policy)
    part_kwh = rows(energy, shape.participant).sum(axis=1) if (energy < 0).any() else energy[:0]
    for p in np.flatnonzero(part_kwh < 0):
        flags.append(Flag("negative_usage", f"node {tree.ids[shape.participant[p]]}",
                          f"net consumption {part_kwh[p]:.2f} kWh is negative (export)", True))
    return EngineResult(
        inputs=inputs, shape=shape, segments=segments, pots=tuple(pots), lines=lines,
        steps=tuple(s for a in allocations for s in a.steps),
        node_amount=tuple(a.amount for a in allocations), node_kwh=node_kwh,
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
