"""Allocation of one pot down the meter tree (DOMAIN.md §4: residual, keys, vacancy, cap).

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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from functools import cached_property, partial

import numpy as np

from cloud.apportion.errors import ConservationError

#: ``occupant`` codes besides tenant indices (≥ 0).
VACANT = -1
LANDLORD = -2


class NodeKind(IntEnum):
    """Kinds of meter tree nodes."""

    MAIN = 0
    BRANCH = 1
    UNIT = 2
    COMMON = 3
    LANDLORD = 4


def of_kind(kind: np.ndarray, *kinds: NodeKind) -> np.ndarray:
    """Mask of the nodes whose ``kind`` is one of ``kinds``.

    The kinds are compared as plain ints: numpy takes an ``IntEnum`` for an int64 and
    would compare a copy of the int8 ``kind`` array.
    """
    mask = kind == int(kinds[0])
    for k in kinds[1:]:
        mask |= kind == int(k)
    return mask


class Basis(StrEnum):
    """Allocation keys of DOMAIN.md §4."""

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
    (DOMAIN.md §4). ``redistribute``: vacant days leave the denominator."""

    LANDLORD = "landlord"
    REDISTRIBUTE = "redistribute"


class Component(IntEnum):
    """What a line pays for."""

    OWN_USE = 0
    LANDLORD_LOAD = 1
    COMMON = 2
    LOSS = 3
    EXCESS_LOSS = 4
    FORMULA_REMAINDER = 5
    UNALLOCATED = 6
    DEMAND = 7

    @property
    def label(self) -> str:
        return self.name.lower()


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


@dataclass(frozen=True)
class TreeShape:
    """The tree as arrays, built once per run.

    ``participant`` lists the unit and landlord nodes (ascending node index);
    ``participant_of`` maps a node to its participant index or −1; ``members`` gives, per
    node, the participants strictly below it (ascending).
    """

    kind: np.ndarray
    parent: np.ndarray
    levels: tuple[np.ndarray, ...]
    level_parent: tuple[np.ndarray | int, ...]
    root: int
    allocating: np.ndarray
    participant: np.ndarray
    participant_of: np.ndarray
    member_index: np.ndarray
    member_start: np.ndarray
    area: np.ndarray

    @classmethod
    def build(cls, kind: np.ndarray, parent: np.ndarray, node_area: np.ndarray) -> TreeShape:
        """Arrays for ``kind`` / ``parent`` (−1 at the root) / node floor area [m²]."""
        nodes = kind.size
        # levels top-down: the children of one level are the next; the extra last slot of
        # ``in_level`` is where a root's parent (−1) looks
        levels_found = []
        in_level = np.zeros(nodes + 1, dtype=bool)
        level = roots = np.flatnonzero(parent < 0)
        in_level[level] = True
        placed = level.size
        while placed < nodes:  # (a node under a cycle is never placed: an empty level ends)
            below = np.flatnonzero(in_level[parent])
            if not below.size:
                break
            _assign(in_level, level, False)
            _assign(in_level, below, True)
            levels_found.append(below)
            level = below
            placed += below.size
        levels = tuple(levels_found)
        # a level whose nodes all hang under one parent is summed and scaled with scalars
        level_parent = tuple(
            int(parent[level[0]])
            if (rows(parent, level) == parent[level[0]]).all()
            else parent[level]
            for level in levels
        )
        allocating = np.flatnonzero(of_kind(kind, NodeKind.MAIN, NodeKind.BRANCH, NodeKind.COMMON))
        participant = np.flatnonzero(of_kind(kind, NodeKind.UNIT, NodeKind.LANDLORD))
        run = _run(participant)
        if run is None:
            participant_of = np.full(nodes, -1, dtype=np.int64)
            participant_of[participant] = np.arange(participant.size)
        else:  # the participants are a block of nodes: their indices count from its start
            participant_of = np.arange(-run.start, nodes - run.start)
            participant_of[: run.start] = -1
            participant_of[run.stop :] = -1
        ancestors, members = [], []
        has_parent = parent >= 0
        who = np.arange(participant.size)
        up = rows(parent, participant)
        keep = up >= 0
        while True:
            if not keep.all():
                who, up = who[keep], up[keep]
            if not who.size:
                break
            ancestors.append(up)
            members.append(who)
            keep = has_parent[up]
            if not keep.any():
                break
            up = parent[up]
        if len(ancestors) > 1:
            anc, mem = np.concatenate(ancestors), np.concatenate(members)
            key = anc * max(participant.size, 1) + mem  # by ancestor, then participant
            ordered = bool((key[1:] >= key[:-1]).all())
        else:
            anc, mem = (
                (ancestors[0], members[0])
                if ancestors
                else (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
            )
            # one generation: participants ascend, so the order is the ancestors'
            ordered = bool((anc[1:] >= anc[:-1]).all())
        if not ordered:
            order = np.argsort(anc * max(participant.size, 1) + mem, kind="stable")
            anc, mem = anc[order], mem[order]
        # member_start[n] = members of the nodes before n: a step at each ancestor, up by
        # its number of members (the runs of one ancestor in the sorted list)
        last = (
            np.append(np.flatnonzero(anc[1:] != anc[:-1]), anc.size - 1)
            if anc.size
            else (np.zeros(0, dtype=np.int64))
        )
        steps = np.concatenate(([0], anc[last] + 1, [nodes + 1]))
        member_start = np.repeat(np.concatenate(([0], last + 1)), np.diff(steps))
        return cls(
            kind,
            parent,
            levels,
            level_parent,
            int(roots[0]),
            allocating,
            participant,
            participant_of,
            mem,
            member_start,
            rows(node_area, participant),
        )

    def members(self, node: int) -> np.ndarray:
        """Participant indices strictly below ``node`` (ascending)."""
        return self.member_index[self.member_start[node] : self.member_start[node + 1]]

    @cached_property
    def inner(self) -> np.ndarray:
        """Main and branch nodes and any other node with children (ascending): the nodes
        whose energy is compared with their children's."""
        mask = of_kind(self.kind, NodeKind.MAIN, NodeKind.BRANCH)
        for up in self.level_parent:
            mask[up] = True
        return np.flatnonzero(mask)

    def sum_children(self, values: np.ndarray) -> np.ndarray:
        """Σ of ``values`` (nodes, ...) over each node's children."""
        out = np.zeros(values.shape)
        for level, up in zip(self.levels, self.level_parent, strict=True):
            if isinstance(up, int):
                out[up] += _column_sums(rows(values, level))
            elif values.ndim == 1:
                out += np.bincount(up, weights=rows(values, level), minlength=out.size)
            else:
                np.add.at(out, up, rows(values, level))
        return out

    def sum_children_of(self, values: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Σ of ``values`` (nodes, ...) over the children of each of ``nodes`` (an array
        of len(nodes), ...): :meth:`sum_children` at those nodes, without an array as
        large as the tree when every level hangs under one parent (the bulk case)."""
        if not all(isinstance(up, int) for up in self.level_parent):
            return self.sum_children(values)[nodes]
        position = {int(n): i for i, n in enumerate(nodes)}
        out = np.zeros((len(nodes), *values.shape[1:]))
        for level, up in zip(self.levels, self.level_parent, strict=True):
            i = position.get(up) if isinstance(up, int) else None
            if i is not None:
                out[i] += _column_sums(rows(values, level))
        return out

    def scale_down(self, amount: np.ndarray, energy: np.ndarray, denominator: np.ndarray) -> None:
        """Top-down, in place: each node's amount = its parent's × its energy ÷ the parent's
        denominator (0 when that is 0)."""
        for level, up in zip(self.levels, self.level_parent, strict=True):
            if isinstance(up, int):
                price = amount[up] / denominator[up] if denominator[up] > 0 else 0.0
                run = _run(level)
                if run is None:
                    amount[level] = energy[level] * price
                else:
                    np.multiply(energy[run], price, out=amount[run])
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                factor = np.where(denominator[up] > 0, energy[level] / denominator[up], 0.0)
            amount[level] = amount[up] * factor


def _column_sums(below: np.ndarray) -> np.ndarray | float:
    """Σ over the rows of ``below``. Over rows of several columns, einsum adds row after
    row as ``sum(axis=0)`` does (the same floats), without a loop call per row."""
    if below.ndim == 2 and below.shape[1] > 1:
        return np.einsum("ij->j", below)
    return below.sum(axis=0)


def _run(index: np.ndarray) -> slice | None:
    """The slice an ascending unique ``index`` covers when it is a contiguous run."""
    if index.size and int(index[-1]) - int(index[0]) + 1 == index.size:
        return slice(int(index[0]), int(index[-1]) + 1)
    return None


def _assign(array: np.ndarray, index: np.ndarray, values: np.ndarray | int) -> None:
    """``array[index] = values`` through a slice when ``index`` is a contiguous run."""
    run = _run(index)
    array[index if run is None else run] = values


def rows(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``array[index]`` for ascending unique ``index``; a view when it is a contiguous run
    (the common case: every participant, or a branch's units), a copy otherwise."""
    run = _run(index)
    return array[index if run is None else run]


@dataclass(frozen=True)
class Segments:
    """Line bases: each participant's runs of slices with one occupant.

    ``of_slice`` (participants, slices) gives the segment of each participant-slice;
    segments are numbered participant-major, so along a participant's slices (and over
    ascending participants) the numbers never decrease.
    """

    participant: np.ndarray
    occupant: np.ndarray
    first_slice: np.ndarray
    last_slice: np.ndarray
    of_slice: np.ndarray

    @property
    def simple(self) -> bool:
        """One segment per participant: segment number = participant index."""
        return self.participant.size == self.of_slice.shape[0]

    @classmethod
    def build(cls, occupant: np.ndarray) -> Segments:
        """From ``occupant`` (participants, slices): tenant index, VACANT or LANDLORD."""
        count, slices = occupant.shape
        if slices == 1:
            # segment = participant, in slice 0: one index array serves both
            index = np.arange(count)
            first = np.zeros(count, dtype=np.int64)
            return cls(index, occupant[:, 0], first, first, index[:, None])
        new = np.ones_like(occupant, dtype=bool)
        new[:, 1:] = occupant[:, 1:] != occupant[:, :-1]
        of_slice = np.cumsum(new.reshape(-1)).reshape(count, slices) - 1
        rows, cols = np.nonzero(new)
        last = np.empty(rows.size, dtype=np.int64)
        last[:-1] = np.where(rows[1:] == rows[:-1], cols[1:] - 1, slices - 1)
        if rows.size:
            last[-1] = slices - 1
        return cls(rows, occupant[rows, cols], cols, last, of_slice)


@dataclass
class LineBlock:
    """Lines of one pot from one origin and one component (or a code per line).

    ``segment`` (−1: a landlord line of ``origin``), ``weight`` each line's key weight,
    ``ideal`` its full-precision cents, ``kwh`` the energy it stands for — or, to spare a
    million-line array, ``kwh_per_weight`` when that energy is proportional to the weight;
    ``pot`` and ``cents`` are filled in when the pot is rounded.
    """

    segment: np.ndarray
    component: int | np.ndarray
    origin: int
    kwh: np.ndarray | None
    weight: np.ndarray
    ideal: np.ndarray
    kwh_per_weight: float = 0.0
    pot: int = -1
    cents: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.segment.size)

    @property
    def energy(self) -> np.ndarray:
        """kWh per line."""
        return self.kwh if self.kwh is not None else self.weight * self.kwh_per_weight


@dataclass(frozen=True)
class Step:
    """What a node allocated in a pot, for the statement's written-out formula.

    ``kwh`` went to participants by ``basis`` with ``weight_total`` as denominator;
    ``landlord_kwh`` stayed with the landlord (formula remainder); ``node_kwh`` is the
    node's own consumption in the pot; ``amount`` the cents allocated [full precision].
    """

    pot: int
    origin: int
    component: Component
    basis: str
    kwh: float
    weight_total: float
    landlord_kwh: float
    node_kwh: float
    amount: float


@dataclass
class PotAllocation:
    """A pot allocated at full precision: line blocks, steps and node amounts [cents]."""

    blocks: list[LineBlock]
    steps: list[Step]
    amount: np.ndarray
    negative_residual: np.ndarray
    over_cap: np.ndarray


def _by_segment(segment: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Sum columns over runs of equal (non-decreasing) segment numbers."""
    if segment.size < 2:
        return (segment, *columns)
    change = np.flatnonzero(segment[1:] != segment[:-1]) + 1
    if change.size == segment.size - 1:
        return (segment, *columns)
    starts = np.concatenate(([0], change))
    return (segment[starts], *(np.add.reduceat(c, starts) for c in columns))


def basis_weights(
    basis: Basis,
    rule: Rule,
    members: np.ndarray,
    shape: TreeShape,
    usage: np.ndarray,
    slice_days: np.ndarray,
    formula_kwh: np.ndarray | None,
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
                occupant = self.segments.occupant[rows(self.seg_of, members)]
                w = np.where(occupant == VACANT, 0.0, w)
            return w, float(w.sum())

        if not fixed or self.key_weights is None:
            return compute()
        return self.key_weights.get(
            (origin, int(component), tuple(int(j) for j in self.slices)), compute
        )

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
            weight = weights[:, 0]
            seg, ideal = members, weight * (amount / total)
        else:
            seg, ideal, weight = _by_segment(
                rows(self.seg_of, members).reshape(-1),
                (weights * (amount / total)).reshape(-1),
                weights.reshape(-1),
            )
        self.blocks.append(
            LineBlock(seg, int(component), origin, None, weight, ideal, kwh_per_weight=kwh / total)
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


def _exclusive_weights(kwh: np.ndarray, slice_days: np.ndarray) -> np.ndarray:
    """The one unit's weight per slice for an exclusive common meter (1, slices): the
    meter's own kWh, or the slices' days when it measured nothing."""
    weights = np.maximum(kwh, 0.0)[None, :]
    if weights.sum() <= 0:
        return slice_days[None, :].astype(np.float64)
    return weights


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
        DOMAIN.md §4 "fixed parts by days").
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
    amount = np.zeros(nodes)
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
    denominator = np.zeros(nodes)
    denominator[inner] = np.maximum(energy[inner], inner_children)
    shape.scale_down(amount, energy, denominator)
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
                    partial(_exclusive_weights, node_kwh[node], slice_days),
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
        residual = energy[node] - children[node]
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
    = its amount (DOMAIN.md §4 "check conservation at every node").

    Raises ConservationError naming the node (by index) where money appeared or vanished.
    """
    amount = allocation.amount
    emitted: dict[int, float] = {}  # by origin node: the few allocating nodes
    tolerance = 1e-7 * max(1.0, abs(pot_cents))
    for block in allocation.blocks:
        if block.origin >= 0:
            emitted[block.origin] = emitted.get(block.origin, 0.0) + float(block.ideal.sum())
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
