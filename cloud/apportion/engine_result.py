"""The engine's result: a computed run's pots, rounded lines, energies and flags.

:class:`EngineResult` is what :func:`cloud.apportion.engine.apportion` returns;
:class:`Lines` holds the rounded lines as the allocation's blocks and joins their columns
on first use; a :class:`Flag` is something a reviewer must see (some hold the run).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cloud.apportion.engine_inputs import EngineInputs
from cloud.apportion.lines import LANDLORD, LineBlock, Segments, Step
from cloud.apportion.money import Pot
from cloud.apportion.tree import TreeShape


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
        return np.concatenate(
            [
                np.full(len(b), b.component, dtype=np.int8)
                if isinstance(b.component, int)
                else b.component
                for b in self.blocks
            ]
        )

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
        occupant = np.where(
            self.lines.segment >= 0,
            self.segments.occupant[np.maximum(self.lines.segment, 0)],
            LANDLORD,
        )
        return np.where(occupant >= 0, occupant, -1)
