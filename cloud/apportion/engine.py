"""The apportionment engine: register arrays in, cent lines out (docs/domain.md §4).

:func:`apportion` is a pure function of :class:`~cloud.apportion.engine_inputs.EngineInputs`
(numpy arrays and small frozen dataclasses; no database, no I/O) that returns an
:class:`~cloud.apportion.engine_result.EngineResult`:

1. consumption per meter and slice — multipliers, rollover, replacement (each installation
   is its own row with its own multiplier), gaps (:mod:`~cloud.apportion.consumption`);
2. estimation of missing days in the fixed order (:mod:`~cloud.apportion.estimation`);
3. node energies, residual and loss rate per node, estimated share per node;
4. pots: the bill per register and tariff version (:mod:`~cloud.apportion.money`);
5. allocation of each pot down the tree (:mod:`~cloud.apportion.allocation`);
6. largest-remainder rounding once per pot (:mod:`~cloud.apportion.rounding`), with
   conservation checked at every node and per pot to the cent;
7. flags: which hold the run (negative residual, estimates over the limit, implausible
   rollover, negative usage, a markup on resold power) and which are shown only
   (:mod:`~cloud.apportion.checks`).

The period is cut into *slices* at every date where something changes (tariff version,
occupancy, installation, multiplier); everything inside a slice is uniform.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import numpy as np

from cloud.apportion import arrays
from cloud.apportion.allocation import allocate_pot
from cloud.apportion.checks import (
    Balances,
    node_balances,
    node_flags,
    pot_flags,
    tariff_flags,
)
from cloud.apportion.consumption import (
    Unwrapped,
    days_per_slice,
    fast_slice_energy,
    slice_energy,
    unwrap_registers,
)
from cloud.apportion.engine_inputs import EngineInputs
from cloud.apportion.engine_result import EngineResult, Flag, Lines
from cloud.apportion.errors import ApportionError, CaseError
from cloud.apportion.estimation import Method, estimation_rates
from cloud.apportion.keys import Basis, KeyWeights, Rule
from cloud.apportion.lines import LANDLORD, Component, PotAllocation, Segments
from cloud.apportion.money import DEMAND, Pot, make_pots
from cloud.apportion.rounding import largest_remainder_parts
from cloud.apportion.tree import NodeKind, TreeShape, of_kind, rows


def _meter_consumption(
    inputs: EngineInputs, beside: Callable[[], None] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Flag]]:
    """Measured kWh (meters, slices, registers); the repaired rows and their missing days
    per slice (rows, slices, registers); flags. ``beside`` is done by the calling thread
    while a second one starts screening (:func:`fast_slice_energy`)."""
    meters, period = inputs.meters, inputs.period
    bp = period.breakpoints
    screened, measured = fast_slice_energy(meters.registers, bp, meters.multiplier, beside=beside)
    full = (meters.active_from == 0) & (meters.active_to == period.days)
    slow = np.flatnonzero(~(screened & full))
    missing = np.zeros((slow.size, bp.size - 1, len(inputs.registers)))
    flags: list[Flag] = []
    if slow.size:
        unwrapped = _unwrap(inputs, slow)
        measured[slow] = slice_energy(unwrapped.values[:, bp, :], meters.multiplier[slow])
        missing[:] = days_per_slice(unwrapped.missing.astype(np.float64), bp)
        cut = unwrapped.interpolated[:, bp[1:-1]].any(axis=1)
        for row, name in (
            (unwrapped.rollover, "rollover"),
            (unwrapped.implausible, "rollover_implausible"),
            (cut, "prorated"),
        ):
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
    "rollover_implausible": (
        True,
        "register dropped and a rollover is implausible against "
        "the meter's average daily use; the days were estimated",
    ),
    "prorated": (
        False,
        "no reading where the period is cut (tariff version, occupancy ...): "
        "consumption split by days between the readings around it",
    ),
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


def _estimate(
    inputs: EngineInputs, measured: np.ndarray, slow: np.ndarray, slow_missing: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[Flag]]:
    """Estimated kWh (meters, slices, registers), rate [kWh/day] and method (meters,
    registers). Without any missing day these are zeros, each one zero seen through every
    element (read-only: no memory is made or touched for them)."""
    meters, tree = inputs.meters, inputs.tree
    shape = measured.shape
    if not slow_missing.any():
        return (
            np.broadcast_to(0.0, shape),
            np.broadcast_to(0.0, (shape[0], shape[2])),
            np.broadcast_to(np.int8(0), (shape[0], shape[2])),
            [],
        )
    missing = np.zeros(shape)
    missing[slow] = slow_missing
    active_days = np.clip(
        np.minimum(meters.active_to[:, None], inputs.period.breakpoints[None, 1:])
        - np.maximum(meters.active_from[:, None], inputs.period.breakpoints[None, :-1]),
        0,
        None,
    ).sum(axis=1)
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
            flags.append(
                Flag(
                    "estimated",
                    _meters_named(meters.ids, rows),
                    f"days without readings estimated by {label.label} "
                    f"({missing_days[rows].sum():g} meter-register-days)",
                    False,
                )
            )
    return rate[:, None, :] * missing, rate, method, flags


def _node_energy(inputs: EngineInputs, shape: TreeShape, meter_kwh: np.ndarray) -> np.ndarray:
    """kWh (nodes, slices, registers): Σ of each node's meters; a node without a meter
    (a virtual branch) holds the sum of its children."""
    nodes = len(inputs.tree.ids)
    _, slices, nreg = meter_kwh.shape
    node = inputs.meters.node
    if (
        nodes
        and node.size == nodes
        and node[0] == 0
        and node[-1] == nodes - 1
        and (node[1:] > node[:-1]).all()
    ):
        # one meter per node, in node order (the bulk case): every node is metered, the
        # meters' array is the nodes'
        return meter_kwh
    metered = np.bincount(node, minlength=nodes) > 0
    virtual = ~metered & of_kind(shape.kind, NodeKind.BRANCH, NodeKind.MAIN)
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
    if int(inputs.tree.kind[node]) == NodeKind.COMMON:
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


def _formula_inputs(
    inputs: EngineInputs, shape: TreeShape, basis: Mapping[int, Basis], rate: np.ndarray
) -> dict[int, np.ndarray]:
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
            kwh = (
                np.diff(unwrapped.values, axis=1)
                * meters.multiplier[rows][:, slice_of_day][:, :, None]
            )
            kwh += rate[rows][:, None, :] * unwrapped.missing
            difference = np.tensordot(sign[rows].astype(np.float64), kwh, axes=1)
        factor = rule.formula.factors(inputs.drivers[rule.formula.driver])
        out[n] = days_per_slice((difference * factor[:, None])[None], period.breakpoints)[0]
    return out


def _ruled(shape: TreeShape) -> list[int]:
    """Nodes that allocate (main, branch, common): the few with a rule."""
    return [int(n) for n in shape.allocating]


def _effective_basis(
    inputs: EngineInputs, shape: TreeShape, estimated_share: np.ndarray
) -> tuple[dict[int, Basis], list[Flag]]:
    """Each allocating node's key, falling back to area when estimates pass the limit and
    the rule says so; otherwise a holding flag (docs/domain.md §4, missing readings)."""
    flags: list[Flag] = []
    basis: dict[int, Basis] = {}
    for n in _ruled(shape):
        rule = inputs.tree.rules[n] or Rule()
        chosen = rule.basis
        share = float(estimated_share[n])
        if share > rule.estimate_limit:
            subject = f"node {inputs.tree.ids[n]}"
            text = (
                f"estimated kWh are {share:.1%} of the use under the node, above the limit "
                f"{rule.estimate_limit:.1%}"
            )
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
    if int(shape.kind[node]) != NodeKind.COMMON:
        return shape.members(node)
    if rule.shared_by:
        return np.sort(shape.participant_of[list(rule.shared_by)])
    return shape.members(int(shape.parent[node]))


def _estimated_share(
    inputs: EngineInputs, shape: TreeShape, measured: np.ndarray, estimated: np.ndarray | None
) -> np.ndarray:
    """Per node: estimated ÷ total kWh of the participants it allocates over (``estimated``
    None: nothing was)."""
    nodes = len(inputs.tree.ids)
    share = np.zeros(nodes)
    if estimated is None or not estimated.any():
        return share
    est = np.bincount(inputs.meters.node, weights=estimated.sum(axis=(1, 2)), minlength=nodes)
    tot = est + np.bincount(inputs.meters.node, weights=measured.sum(axis=(1, 2)), minlength=nodes)
    for n in _ruled(shape):
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


def _cents_arrays(allocation: PotAllocation) -> list[np.ndarray]:
    """Where a pot's cents go: one int64 array per block, views of one array for the pot
    (large: on a huge-page boundary, :mod:`~cloud.apportion.arrays`)."""
    sizes = [len(b) for b in allocation.blocks]
    return np.split(arrays.empty(sum(sizes), np.int64), np.cumsum(sizes[:-1]))


def _round_pot(pot: Pot, allocation: PotAllocation, cents: list[np.ndarray] | None = None) -> None:
    """Round the pot once (largest remainder over all its lines in their stable order)
    and keep each block's cents on the block (written into ``cents`` when given)."""
    scaled = [b.scaled for b in allocation.blocks]
    rounded = largest_remainder_parts(
        pot.cents, [part for part, _ in scaled], cents, [scale for _, scale in scaled]
    )
    for block, block_cents in zip(allocation.blocks, rounded, strict=True):
        block.pot, block.cents = pot.index, block_cents


#: Participant-pots from which a pot is rounded on a second thread while the next one is
#: allocated.
PARALLEL_LINES = 200_000


def _allocate_and_round(
    allocate: Callable[[Pot], PotAllocation],
    pots: list[Pot],
    beside: Callable[[], Balances],
    *,
    pipelined: bool,
) -> tuple[list[PotAllocation], Balances]:
    """Allocate and round every pot, in pot order; and compute ``beside``, which does not
    depend on the allocation.

    Pipelined, one worker thread rounds each pot while the calling thread allocates the
    next one; once every pot is allocated, the calling thread computes ``beside`` and then
    rounds the pots the worker has not started yet, the last first, so both cores round to
    the end. A pot is rounded by one thread and the same way on either. Every array a run
    keeps (amounts, shares, cents, balances) is made on the calling thread: a short-lived
    worker's own heap is handed back to the system when the run's arrays are freed, so
    arrays made there would cost fresh pages on every run (the balances made on the worker
    cost a thousand page faults a run at 1,000,000 meters). Failures come in pot order, as
    without the pipeline.
    """
    if not pipelined or len(pots) < 2 or (os.cpu_count() or 1) < 2:
        allocations = []
        for pot in pots:
            allocation = allocate(pot)
            _round_pot(pot, allocation, _cents_arrays(allocation))
            allocations.append(allocation)
        return allocations, beside()
    allocations: list[PotAllocation] = []
    rounding: list[tuple[Future[None], Pot, PotAllocation, list[np.ndarray]]] = []
    with ThreadPoolExecutor(max_workers=1) as rounder:
        try:
            for pot in pots:
                allocation = allocate(pot)
                cents = _cents_arrays(allocation)
                rounding.append(
                    (rounder.submit(_round_pot, pot, allocation, cents), pot, allocation, cents)
                )
                allocations.append(allocation)
            balances = beside()
            for i in reversed(range(len(rounding))):
                queued, pot, allocation, cents = rounding[i]
                if queued.cancel():  # not started by the worker: round it here
                    here: Future[None] = Future()
                    try:
                        _round_pot(pot, allocation, cents)
                        here.set_result(None)
                    except ApportionError as exc:
                        here.set_exception(exc)
                    rounding[i] = (here, pot, allocation, cents)
        finally:
            for queued, *_ in rounding:  # an earlier pot's failure first
                if not queued.cancelled():  # (taken back, then stopped by another error)
                    queued.result()
    return allocations, balances


def _layout(inputs: EngineInputs) -> tuple[TreeShape, Segments, np.ndarray]:
    """The tree's shape; the lines' segments (occupants, landlord loads as the landlord);
    each participant's own-use component (own use, or a landlord load's)."""
    tree = inputs.tree
    shape = TreeShape.build(tree.kind, tree.parent, tree.area)
    occupant = rows(inputs.occupant, shape.participant)
    landlord = of_kind(rows(shape.kind, shape.participant), NodeKind.LANDLORD)
    if landlord.any():
        occupant = np.where(landlord[:, None], LANDLORD, occupant)
    segments = Segments.build(occupant)
    own_component = np.where(landlord, np.int8(Component.LANDLORD_LOAD), np.int8(Component.OWN_USE))
    return shape, segments, own_component


def apportion(inputs: EngineInputs) -> EngineResult:
    """Compute a run: consumption → estimation → residual → allocation → cents.

    Returns lines whose cents sum exactly to every pot of the bill; the flags say whether
    the run is held. Raises an :class:`~cloud.apportion.errors.ApportionError` subclass
    for inputs that cannot be computed (decreasing register, no estimation method,
    conservation violated).
    """
    tree, period = inputs.tree, inputs.period
    if inputs.meters.registers.shape[1] != period.days + 1:
        raise CaseError(
            f"registers cover {inputs.meters.registers.shape[1]} boundaries; the "
            f"period has {period.days} days, so {period.days + 1} are needed"
        )
    # the tree's shape and the lines' segments do not depend on the readings: made while
    # a second thread starts screening them
    layout: list[tuple[TreeShape, Segments, np.ndarray]] = []
    measured, slow, slow_missing, flags = _meter_consumption(
        inputs, beside=lambda: layout.append(_layout(inputs))
    )
    shape, segments, own_component = layout[0]
    # without a missing day the estimates are zeros never written: not read either
    estimating = bool(slow_missing.any())
    estimated, rate, method, estimate_flags = _estimate(inputs, measured, slow, slow_missing)
    flags += estimate_flags
    meter_kwh = measured + estimated if estimating and method.any() else measured
    node_kwh = _node_energy(inputs, shape, meter_kwh)
    estimated_share = _estimated_share(inputs, shape, measured, estimated if estimating else None)
    basis, basis_flags = _effective_basis(inputs, shape, estimated_share)
    flags += basis_flags
    formula_kwh = _formula_inputs(inputs, shape, basis, rate)

    root = int(np.flatnonzero(tree.parent < 0)[0])
    pots = make_pots(
        inputs.bill, inputs.tariffs, inputs.registers, node_kwh[root], period.breakpoints
    )
    slice_days = period.slice_days
    key_weights = KeyWeights()

    def allocate(pot: Pot) -> PotAllocation:
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
        return allocate_pot(
            pot_index=pot.index,
            pot_cents=pot.cents,
            node_kwh=pot_kwh,
            shape=shape,
            rules=tree.rules,
            basis=basis,
            segments=segments,
            slices=sl,
            slice_days=slice_days[sl],
            formula_kwh=pot_formula,
            own_component=own_component,
            by_area_only=pot.register == DEMAND and inputs.policy.demand_basis == "area",
            key_weights=key_weights,
        )

    # pots are independent and each is computed the same way wherever it runs: large runs
    # round one pot on a second core while allocating the next (numpy releases the GIL)
    allocations, (residual, loss_rate, usage_flags) = _allocate_and_round(
        allocate,
        pots,
        partial(node_balances, inputs, shape, node_kwh),
        pipelined=shape.participant.size * len(pots) >= PARALLEL_LINES,
    )
    lines = Lines(tuple(b for a in allocations for b in a.blocks))
    negative = np.zeros(len(tree.ids), dtype=bool)
    over_cap = np.zeros(len(tree.ids), dtype=bool)
    for a in allocations:
        negative |= a.negative_residual
        over_cap |= a.over_cap
    flags += node_flags(inputs, negative, over_cap, loss_rate, residual)
    flags += tariff_flags(inputs) + pot_flags(pots, inputs.policy) + usage_flags
    return EngineResult(
        inputs=inputs,
        shape=shape,
        segments=segments,
        pots=tuple(pots),
        lines=lines,
        steps=tuple(s for a in allocations for s in a.steps),
        node_amount=tuple(a.amount for a in allocations),
        node_kwh=node_kwh,
        measured_kwh=measured,
        estimated_kwh=estimated,
        estimation_method=method,
        residual_kwh=residual,
        loss_rate=loss_rate,
        estimated_share=estimated_share,
        flags=tuple(flags),
    )


__all__ = ["PARALLEL_LINES", "apportion"]
