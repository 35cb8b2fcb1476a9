"""The lines an allocation produces: occupant codes, segments, components, blocks, steps.

A line's base is a *segment* — one participant's run of slices with one occupant
(:class:`Segments`); lines of one pot from one origin and one component are held as a
:class:`LineBlock`; a :class:`Step` records what a node allocated in a pot, for the
statement; :class:`PotAllocation` is one pot allocated at full precision. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from cloud.apportion.tree import counting

#: ``occupant`` codes besides tenant indices (≥ 0).
VACANT = -1
LANDLORD = -2


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
            index = counting(0, count)
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
    ``shares`` its full-precision cents, ``kwh`` the energy it stands for. To spare a
    million-line array, ``kwh`` is None when that energy is proportional to the weight
    (``kwh_per_weight``), and ``shares`` None when the cents are (``cents_per_weight``; the
    weights then sum to ``weight_total``): :attr:`ideal` and :attr:`energy` are computed
    on use. ``pot`` and ``cents`` are filled in when the pot is rounded.
    """

    segment: np.ndarray
    component: int | np.ndarray
    origin: int
    kwh: np.ndarray | None
    weight: np.ndarray
    shares: np.ndarray | None
    kwh_per_weight: float = 0.0
    pot: int = -1
    cents: np.ndarray | None = None
    cents_per_weight: float = 0.0
    weight_total: float = 0.0

    def __len__(self) -> int:
        return int(self.segment.size)

    @property
    def ideal(self) -> np.ndarray:
        """Full-precision cents per line."""
        return self.shares if self.shares is not None else self.weight * self.cents_per_weight

    @property
    def ideal_total(self) -> float:
        """Σ of the full-precision cents [cents]."""
        if self.shares is not None:
            return float(self.shares.sum())
        return self.cents_per_weight * self.weight_total

    @property
    def scaled(self) -> tuple[np.ndarray, float]:
        """The full-precision cents as an array and a factor, their product (the array
        held, and 1, or the weights and the cents per weight)."""
        if self.shares is not None:
            return self.shares, 1.0
        return self.weight, self.cents_per_weight

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
