"""The meter tree as arrays: node kinds and the shape a run walks, built once per run.

:class:`TreeShape` holds the tree's levels (top-down), its allocating nodes, its
participants (unit and landlord nodes) and, per node, the participants below it; it sums
values over children and scales amounts down the levels. :func:`rows` takes rows of an
array through a view when the index is a contiguous run (the bulk case). Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property

import numpy as np


class NodeKind(IntEnum):
    """Kinds of meter tree nodes."""

    MAIN = 0
    BRANCH = 1
    UNIT = 2
    COMMON = 3
    LANDLORD = 4


#: A residual smaller than this is no energy at all [kWh]: one watt-hour, ten times finer than
#: a two-decimal register, far coarser than the float error of summing children.
RESIDUAL_RESOLUTION_KWH = 0.001


def node_residual(energy: np.ndarray | float, children: np.ndarray | float) -> np.ndarray:
    """A node's energy minus its children's [kWh], exactly 0 where the two agree within
    :data:`RESIDUAL_RESOLUTION_KWH` (docs/domain.md §4).

    Both sides are sums of register differences × multipliers in floating point, so a branch
    whose one sub-meter measures the same load, or a meterless branch (its energy is its
    children's), comes out as ±1e-13 kWh rather than 0; the sign of such a residual means
    nothing and must never hold a run as ``negative_residual``.
    """
    residual = np.asarray(energy, dtype=np.float64) - np.asarray(children, dtype=np.float64)
    return np.where(np.abs(residual) < RESIDUAL_RESOLUTION_KWH, 0.0, residual)


def of_kind(kind: np.ndarray, *kinds: NodeKind) -> np.ndarray:
    """Mask of the nodes whose ``kind`` is one of ``kinds``.

    The kinds are compared as plain ints: numpy takes an ``IntEnum`` for an int64 and
    would compare a copy of the int8 ``kind`` array.
    """
    mask = kind == int(kinds[0])
    for k in kinds[1:]:
        mask |= kind == int(k)
    return mask


@dataclass(frozen=True)
class TreeShape:
    """The tree as arrays, built once per run.

    ``participant`` lists the unit and landlord nodes (ascending node index);
    ``participant_of`` maps a node to its participant index or −1; ``members`` gives, per
    node, the participants strictly below it (ascending): ``member_index[member_bounds[i]
    : member_bounds[i + 1]]`` for the ``i``-th of ``member_node`` (the nodes with any).
    Index arrays that count up (a level or the participants as one run of nodes, as in a
    large flat site) are views of one shared read-only array (:func:`counting`).
    """

    kind: np.ndarray
    parent: np.ndarray
    levels: tuple[np.ndarray, ...]
    level_parent: tuple[np.ndarray | int, ...]
    root: int
    allocating: np.ndarray
    participant: np.ndarray
    member_index: np.ndarray
    member_node: np.ndarray
    member_bounds: np.ndarray
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
            below = _indices(in_level[parent])
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
        participant = _indices(of_kind(kind, NodeKind.UNIT, NodeKind.LANDLORD))
        if (
            len(levels) == 1
            and isinstance(level_parent[0], int)
            and not of_kind(kind[roots], NodeKind.UNIT, NodeKind.LANDLORD).any()
        ):
            # every participant hangs right under one root (a flat site): that root is each
            # one's only ancestor, and its members are every participant
            count = participant.size
            return cls(
                kind,
                parent,
                levels,
                level_parent,
                int(roots[0]),
                allocating,
                participant,
                counting(0, count),
                np.array([level_parent[0]] if count else [], dtype=np.int64),
                np.array([0, count] if count else [0], dtype=np.int64),
                rows(node_area, participant),
            )
        ancestors, members = [], []
        has_parent = parent >= 0
        who = counting(0, participant.size)
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
        # the runs of one ancestor in the sorted list: where each ends
        last = (
            np.append(np.flatnonzero(anc[1:] != anc[:-1]), anc.size - 1)
            if anc.size
            else (np.zeros(0, dtype=np.int64))
        )
        return cls(
            kind,
            parent,
            levels,
            level_parent,
            int(roots[0]),
            allocating,
            participant,
            mem,
            anc[last],
            np.concatenate(([0], last + 1)),
            rows(node_area, participant),
        )

    def members(self, node: int) -> np.ndarray:
        """Participant indices strictly below ``node`` (ascending)."""
        i = int(np.searchsorted(self.member_node, node))
        if i < self.member_node.size and self.member_node[i] == node:
            return self.member_index[self.member_bounds[i] : self.member_bounds[i + 1]]
        return self.member_index[:0]

    @cached_property
    def participant_of(self) -> np.ndarray:
        """Per node: its participant index, or −1 (made on first use)."""
        participant_of = np.full(self.kind.size, -1, dtype=np.int64)
        participant_of[self.participant] = np.arange(self.participant.size)
        return participant_of

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
        denominator (0 when that is 0); ``denominator`` holds one per :attr:`inner` node
        (every parent is one), in their order."""
        inner = self.inner
        for level, up in zip(self.levels, self.level_parent, strict=True):
            if isinstance(up, int):
                below = float(denominator[int(np.searchsorted(inner, up))])
                price = amount[up] / below if below > 0 else 0.0
                run = _run(level)
                if run is None:
                    amount[level] = energy[level] * price
                else:
                    np.multiply(energy[run], price, out=amount[run])
                continue
            below_each = denominator[np.searchsorted(inner, up)]
            with np.errstate(invalid="ignore", divide="ignore"):
                factor = np.where(below_each > 0, energy[level] / below_each, 0.0)
            amount[level] = amount[up] * factor


def _column_sums(below: np.ndarray) -> np.ndarray | float:
    """Σ over the rows of ``below``. Over rows of several columns, einsum adds row after
    row as ``sum(axis=0)`` does (the same floats), without a loop call per row."""
    if below.ndim == 2 and below.shape[1] > 1:
        return np.einsum("ij->j", below)
    return below.sum(axis=0)


#: 0, 1, 2 … shared by every run (read-only; grown as needed): :func:`counting`.
_COUNTING = np.arange(0)


def counting(start: int, stop: int) -> np.ndarray:
    """``np.arange(start, stop)`` (int64, 0 ≤ start ≤ stop) as a read-only view of one array
    kept for every run: index arrays of a large flat tree cost no fresh memory."""
    global _COUNTING
    counted = _COUNTING
    if stop > counted.size:
        counted = np.arange(max(stop, 2 * counted.size), dtype=np.int64)
        counted.flags.writeable = False
        _COUNTING = counted
    return counted[start:stop]


def _indices(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(mask)``; a view of :func:`counting` when the True entries are one
    run (no fresh array as large as the run)."""
    count = int(np.count_nonzero(mask))
    first = int(mask.argmax()) if count else 0
    if count and mask[first : first + count].all():
        return counting(first, first + count)
    return np.flatnonzero(mask)


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
