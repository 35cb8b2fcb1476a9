"""Allocation of one pot down the meter tree (docs/domain.md §4: residual, keys, vacancy, cap).

The pot (cents of one register in one tariff version) enters at the main meter and flows
down by energy: every metered child of a node gets the node's amount × its kWh ÷ the node's
kWh. What no child measured is the node's residual R = node − Σ children; its money is
split among the *participants* below the node (units and landlord loads) by the node's rule;
tenants carry at most λ_cap × node kWh of it, the rest is the landlord's. A common meter's
money is split among the participants of its parent's subtree (or its ``shared_by`` list,
or its one exclusive unit) by its own rule. Vacant days stay in the denominator and their
shares go to the landlord (or drop out with the ``redistribute`` policy).

Everything stays at full precision here (float64 cents); :mod:`cloud.apportion.rounding`
rounds each pot once. Lines are produced per *segment* — one participant's run of days with
one occupant — and in a fixed order (own use first, then allocating nodes in node order),
which is the tie-break key of the rounding.

The tree's arrays are in :mod:`cloud.apportion.tree`, the keys and rules in
:mod:`cloud.apportion.keys`, the segments, line blocks and steps in
:mod:`cloud.apportion.lines`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property, partial

import numpy as np

from cloud.apportion import arrays
from cloud.apportion.errors import ConservationError
from cloud.apportion.keys import (
    FIXED_BASES,
    Basis,
    CommonType,
    KeyWeights,
    Rule,
    VacantPolicy,
    basis_weights,
    exclusive_weights,
)
from cloud.apportion.lines import VACANT, Component, LineBlock, PotAllocation, Segments, Step
from cloud.apportion.tree import NodeKind, TreeShape, node_residual, rows


def _by_segment(segment: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sum columns over runs of equal (non-decreasing) segment numbers."""
    if segment.size < 2:
        return (segment, *columns)
    change = np.flatnonzero(segment[1:] != segment[:-1]) + 1
    if change.size == segment.size - 1:
        return (segment, *columns)
    starts = np.concatenate(([0], change))
    return (segment[starts], *(np.add.reduceat(c, starts) for c in columns))


class _PotAllocator:
    """The state of one pot's pass down the tree: blocks and steps emitted so far."""

    def __init__(
        self,
        pot_index: int,
        node_kwh: np.ndarray,
        shape: TreeShape,
        basis: Mapping[int, Basis],
        segments: Segments,
        slices: np.ndarray,
        slice_days: np.ndarray,
        formula_kwh: Mapping[int, np.ndarray],
        key_weights: KeyWeights | None,
    ) -> None:
        self.pot_index = pot_index
        self.node_kwh = node_kwh
        self.shape = shape
        self.basis = basis
        self.segments = segments
        self.slice_days = slice_days
        self.formula_kwh = formula_kwh
        # with one segment per participant and one slice, a line is a participant: no
        # aggregation by segment is needed (the bulk case)
        self.direct = segments.simple and slices.size == 1
        self.slices = slices
        self.key_weights = key_weights
        self.usage = rows(node_kwh, shape.participant)
        self.blocks: list[LineBlock] = []
        self.steps: list[Step] = []

    @cached_property
    def seg_of(self) -> np.ndarray:
        """Segment of each participant in each of the pot's slices (participants, slices)."""
        return self.segments.of_slice[:, self.slices]

    def keyed(
        self,
        origin: int,
        component: Component,
        members: np.ndarray,
        weights: Callable[[], np.ndarray],
        vacant: VacantPolicy,
        fixed: bool,
    ) -> tuple[np.ndarray, float]:
        """A key's weights over ``members`` (vacant days out of them under the
        ``redistribute`` policy) and their total; once per run for a ``fixed`` key."""

        def compute() -> tuple[np.ndarray, float]:
            w = weights()
            if vacant is VacantPolicy.REDISTRIBUTE:
                w = np.where(self.vacant(members), 0.0, w)
            return w, float(w.sum())

        if not fixed or self.key_weights is None:
            return compute()
        return self.key_weights.get(
            (origin, int(component), tuple(int(j) for j in self.slices)), compute
        )

    def vacant(self, members: np.ndarray) -> np.ndarray:
        """Which of ``members``' slices are vacant (members, slices)."""
        return self.segments.occupant[rows(self.seg_of, members)] == VACANT

    def spread(
        self,
        origin: int,
        component: Component,
        members: np.ndarray,
        keyed: tuple[np.ndarray, float],
        amount: float,
        kwh: float,
        landlord_kwh: float = 0.0,
        basis: str | None = None,
    ) -> None:
        """Lines for ``amount`` [cents] / ``kwh`` over ``members`` by the ``keyed`` weights
        and total (:meth:`keyed`); what finds no weight at all is an ``unallocated``
        landlord line."""
        weights, total = keyed
        if total <= 0 or members.size == 0:
            self.landlord_line(origin, Component.UNALLOCATED, amount, kwh)
            return
        if self.direct:
            # a line per member: its cents are its weight × amount ÷ total, computed where
            # they are read (rounding, the statement) rather than held
            self.blocks.append(
                LineBlock(
                    members,
                    int(component),
                    origin,
                    None,
                    weights[:, 0],
                    None,
                    kwh_per_weight=kwh / total,
                    cents_per_weight=amount / total,
                    weight_total=total,
                )
            )
        else:
            seg, ideal, weight = _by_segment(
                rows(self.seg_of, members).reshape(-1),
                (weights * (amount / total)).reshape(-1),
                weights.reshape(-1),
            )
            self.blocks.append(
                LineBlock(
                    seg, int(component), origin, None, weight, ideal, kwh_per_weight=kwh / total
                )
            )
        self.steps.append(
            Step(
                self.pot_index,
                origin,
                component,
                basis or self.basis[origin].value,
                kwh,
                total,
                landlord_kwh,
                float(self.node_kwh[origin].sum()),
                amount,
            )
        )

    def landlord_line(self, origin: int, component: Component, amount: float, kwh: float) -> None:
        self.blocks.append(
            LineBlock(
                np.array([-1]),
                int(component),
                origin,
                np.array([kwh]),
                np.array([0.0]),
                np.array([amount]),
            )
        )

    def allocate(
        self,
        node: int,
        component: Component,
        members: np.ndarray,
        amount: float,
        kwh: float,
        rule: Rule,
    ) -> None:
        """``amount`` over ``members`` by the node's key; a formula's remainder to the
        landlord."""
        basis = self.basis[node]
        landlord_kwh = 0.0
        if basis is Basis.FORMULA:
            per_slice = self.formula_kwh[node]
            passed = float(np.clip(np.maximum(per_slice, 0.0).sum(), 0.0, max(kwh, 0.0)))
            ratio = passed / kwh if kwh > 0 else 0.0
            remainder = amount * (1.0 - ratio)
            landlord_kwh = kwh - passed
            if remainder != 0:
                self.landlord_line(node, Component.FORMULA_REMAINDER, remainder, landlord_kwh)
            amount, kwh = amount * ratio, passed
            if amount == 0:
                return
        keyed = self.keyed(
            node,
            component,
            members,
            lambda: basis_weights(
                basis,
                rule,
                members,
                self.shape,
                self.usage,
                self.slice_days,
                self.formula_kwh.get(node),
                self.vacant(members) if rule.vacant is VacantPolicy.REDISTRIBUTE else None,
            ),
            rule.vacant,
            fixed=basis in FIXED_BASES,
        )
        self.spread(node, component, members, keyed, amount, kwh, landlord_kwh)

    def own_use(self, amount: np.ndarray, energy: np.ndarray, own_component: np.ndarray) -> None:
        """Each participant's amount over its slices by its own consumption (the line's
        weight is its own kWh)."""
        part = self.shape.participant
        if self.direct:
            usage = self.usage[:, 0]
            self.blocks.append(
                LineBlock(
                    self.segments.participant, own_component, -1, usage, usage, rows(amount, part)
                )
            )
            return
        total = rows(energy, part)[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            per_slice = np.where(total != 0, self.usage / total, 0.0)
        seg, ideal, kwh = _by_segment(
            self.seg_of.reshape(-1),
            (rows(amount, part)[:, None] * per_slice).reshape(-1),
            self.usage.reshape(-1),
        )
        self.blocks.append(
            LineBlock(seg, own_component[self.segments.participant[seg]], -1, kwh, kwh, ideal)
        )


def allocate_pot(
    *,
    pot_index: int,
    pot_cents: int,
    node_kwh: np.ndarray,
    shape: TreeShape,
    rules: tuple[Rule | None, ...],
    basis: Mapping[int, Basis],
    segments: Segments,
    slices: np.ndarray,
    slice_days: np.ndarray,
    formula_kwh: Mapping[int, np.ndarray],
    own_component: np.ndarray,
    by_area_only: bool = False,
    key_weights: KeyWeights | None = None,
) -> PotAllocation:
    """Allocate one pot down the tree at full precision.

    Parameters
    ----------
    pot_cents : int
        The pot [cents].
    node_kwh : float64 (nodes, slices)
        Each node's consumption in the pot's slices [kWh]; a branch without a meter holds
        the sum of its children.
    rules, basis :
        Per node: the rule (None for units and landlord loads); per allocating node its
        effective key (after any fall-back to area).
    segments, slices, slice_days :
        Line bases, the pot's slice indices and their days.
    formula_kwh :
        Per formula node: Σ difference × daily factor per slice of the pot [kWh].
    own_component : int8 (participants,)
        ``own_use`` or ``landlord_load`` per participant.
    by_area_only :
        Allocate the whole pot to all participants by area × days (a demand charge,
        (docs/domain.md §4 "fixed parts by days").
    key_weights :
        The run's shared weights of the keys that do not depend on the pot (area, per
        unit, coefficient); None computes them for this pot alone.

    Raises
    ------
    ConservationError
        A node's lines and children do not add up to its amount.
    """
    nodes = node_kwh.shape[0]
    kind = shape.kind
    run = _PotAllocator(
        pot_index, node_kwh, shape, basis, segments, slices, slice_days, formula_kwh, key_weights
    )
    negative = np.zeros(nodes, dtype=bool)
    over_cap = np.zeros(nodes, dtype=bool)
    root = shape.root
    # a result of the run: when the levels below the root hold every other node, scaling
    # down writes every amount, and the array needs no zeros first
    every = not by_area_only and 1 + sum(level.size for level in shape.levels) == nodes
    amount = arrays.empty(nodes) if every else arrays.zeros(nodes)
    amount[root] = pot_cents
    if by_area_only:
        everyone = np.arange(shape.participant.size)
        keyed = run.keyed(
            root,
            Component.DEMAND,
            everyone,
            lambda: shape.area[:, None] * slice_days[None, :].astype(np.float64),
            VacantPolicy.LANDLORD,
            fixed=True,
        )
        run.spread(
            root, Component.DEMAND, everyone, keyed, float(pot_cents), 0.0, basis=Basis.AREA.value
        )
        allocation = PotAllocation(run.blocks, run.steps, amount, negative, over_cap)
        check_node_conservation(allocation, pot_cents, shape, segments)
        return allocation

    energy = node_kwh[:, 0] if node_kwh.shape[1] == 1 else node_kwh.sum(axis=1)
    # what a node's amount is split by: its energy, or its children's when they measure
    # more; needed only where there are children or a residual
    inner = shape.inner
    inner_children = shape.sum_children_of(energy, inner)
    children = dict(zip(inner.tolist(), inner_children.tolist(), strict=True))
    # held for the inner nodes only (every other node's is 0): no array as large as the tree
    inner_denominator = np.maximum(energy[inner], inner_children)
    denominator = dict(zip(inner.tolist(), inner_denominator.tolist(), strict=True))
    shape.scale_down(amount, energy, inner_denominator)
    run.own_use(amount, energy, own_component)

    for node in shape.allocating:
        rule = rules[node] or Rule()
        if int(kind[node]) == NodeKind.COMMON:  # (a numpy scalar against an enum is slow)
            if amount[node] == 0:
                continue
            if rule.common_type is CommonType.EXCLUSIVE:
                only = np.array([shape.participant_of[rule.exclusive_to]])
                keyed = run.keyed(
                    node,
                    Component.COMMON,
                    only,
                    partial(exclusive_weights, node_kwh[node], slice_days),
                    VacantPolicy.LANDLORD,
                    fixed=False,
                )
                run.spread(
                    node,
                    Component.COMMON,
                    only,
                    keyed,
                    amount[node],
                    energy[node],
                    basis=CommonType.EXCLUSIVE.value,
                )
            else:
                members = (
                    np.sort(shape.participant_of[list(rule.shared_by)])
                    if rule.shared_by
                    else shape.members(int(shape.parent[node]))
                )
                run.allocate(node, Component.COMMON, members, amount[node], energy[node], rule)
            continue
        residual = float(node_residual(energy[node], children[node]))
        negative[node] = residual < 0
        if denominator[node] > 0:
            residual_kwh = max(residual, 0.0)
            to_share = amount[node] * residual_kwh / denominator[node]
        else:
            residual_kwh, to_share = 0.0, amount[node]
        if to_share == 0:
            continue
        tenant_kwh = residual_kwh
        if rule.loss_cap is not None and residual_kwh > 0:
            tenant_kwh = min(residual_kwh, rule.loss_cap * energy[node])
            over_cap[node] = tenant_kwh < residual_kwh
        tenant_amount = to_share * (tenant_kwh / residual_kwh if residual_kwh > 0 else 1.0)
        if to_share - tenant_amount > 0:
            run.landlord_line(
                node, Component.EXCESS_LOSS, to_share - tenant_amount, residual_kwh - tenant_kwh
            )
        if tenant_amount > 0:
            run.allocate(node, Component.LOSS, shape.members(node), tenant_amount, tenant_kwh, rule)
    allocation = PotAllocation(run.blocks, run.steps, amount, negative, over_cap)
    check_node_conservation(allocation, pot_cents, shape, segments)
    return allocation


def check_node_conservation(
    allocation: PotAllocation, pot_cents: int, shape: TreeShape, segments: Segments
) -> None:
    """At every node, at full precision: the node's amount = Σ its children's amounts +
    Σ the lines it emitted (loss, common, landlord); every participant's own-use lines
    = its amount (docs/domain.md §4 "check conservation at every node").

    Raises ConservationError naming the node (by index) where money appeared or vanished.
    """
    amount = allocation.amount
    emitted: dict[int, float] = {}  # by origin node: the few allocating nodes
    tolerance = 1e-7 * max(1.0, abs(pot_cents))
    for block in allocation.blocks:
        if block.origin >= 0:
            emitted[block.origin] = emitted.get(block.origin, 0.0) + block.ideal_total
            continue
        if np.shares_memory(block.ideal, amount):
            continue  # the own-use lines are the participants' amounts themselves
        who = block.segment if segments.simple else segments.participant[block.segment]
        own = np.bincount(who, weights=block.ideal, minlength=shape.participant.size)
        bad = np.flatnonzero(np.abs(own - rows(amount, shape.participant)) > tolerance)
        if bad.size:
            raise ConservationError(
                f"node #{int(shape.participant[bad[0]])}: own-use lines "
                f"differ from its amount (pot {pot_cents} cents)"
            )
    inner = shape.inner
    children = dict(zip(inner.tolist(), shape.sum_children_of(amount, inner).tolist(), strict=True))
    for node in shape.allocating.tolist():
        got = emitted.get(node, 0.0) + (
            0.0 if int(shape.kind[node]) == NodeKind.COMMON else children.get(node, 0.0)
        )
        if abs(amount[node] - got) > tolerance:
            raise ConservationError(
                f"node #{node}: {amount[node]:.6f} cents in, {got:.6f} cents out "
                f"(pot {pot_cents} cents)"
            )
