"""Largest-remainder rounding of one pot into integer cents (DOMAIN.md §4, Money).

Each pot (a bill amount per register and tariff version) is rounded once: every line's
ideal share is floored, and the cents left over go one each to the lines with the largest
remainders, ties broken by line order (the caller's stable key). The result sums to the pot
exactly, because the leftover is computed in integers.

Ideal shares come from float64 arithmetic. Before flooring they are put on a grid of
``1 / QUANTUM`` cent (2⁻¹⁴, about 0.00006 cent), so that shares equal in exact arithmetic
(e.g. 4/3 and 1/3 cent, whose float remainders differ in the last bit) have equal
remainders and are ordered by the tie-break, as a person computing by hand would order
them. float64 error on a pot of 10¹⁰ cents is about 10⁻⁶ cent, well inside the grid. The
grid is a power of two: scaling to it is exact in binary floating point, and whole cents
and remainders are a shift and a mask of the grid value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cloud.apportion.errors import ConservationError

#: Grid of the ideal shares, in parts of a cent (a power of two).
GRID_BITS = 14
QUANTUM = 1 << GRID_BITS


def largest_remainder(total_cents: int, ideal_cents: np.ndarray) -> np.ndarray:
    """Split ``total_cents`` into integer cents following ``ideal_cents`` (one array).

    See :func:`largest_remainder_parts`; this is the one-part case.
    """
    return largest_remainder_parts(total_cents, [ideal_cents])[0]


def largest_remainder_parts(total_cents: int, parts: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Split ``total_cents`` into integer cents over lines held in several arrays.

    Parameters
    ----------
    total_cents : int
        The pot [cents].
    parts : sequence of float64 arrays
        The lines' shares at full precision [cents], ≥ 0, summing to ``total_cents``; the
        line order (the tie-break key) is part by part, then index within a part.

    Returns
    -------
    list of int64 arrays, one per part
        Cents per line, Σ over all parts = ``total_cents``; each within one cent of its
        ideal share.

    Raises
    ------
    ConservationError
        The leftover after flooring is more cents than there are lines: the ideal shares
        do not add up to the pot.
    """
    floors, remainders = [], []
    floor_sum, lines = 0, 0
    scaled_buffer = np.empty(max((p.size for p in parts), default=0))
    for ideal in parts:
        scaled = np.multiply(ideal, QUANTUM, out=scaled_buffer[: ideal.size])
        np.rint(scaled, out=scaled)
        grid = scaled.astype(np.int64)
        floors.append(np.right_shift(grid, GRID_BITS))
        remainders.append(np.bitwise_and(grid, QUANTUM - 1, out=grid))
        floor_sum += int(floors[-1].sum())
        lines += ideal.size
    leftover = total_cents - floor_sum
    if abs(leftover) > lines:
        raise ConservationError(
            f"floored shares sum to {floor_sum} cents over {lines} lines, the pot is "
            f"{total_cents} cents"
        )
    if leftover > 0:
        given = _give(floors, remainders, leftover, +1)
    elif leftover < 0:
        # the grid rounded some shares up to a whole cent; take back from the smallest
        # remainders among lines that have a cent to give
        spare = [np.where(c > 0, QUANTUM - 1 - r, -1) for c, r in zip(floors, remainders,
                                                                        strict=True)]
        given = -_give(floors, spare, -leftover, -1)
    else:
        given = 0
    if floor_sum + given != total_cents:
        raise ConservationError(f"rounded lines sum to {floor_sum + given} cents, the pot is "
                                f"{total_cents}")
    return floors


def _give(cents: list[np.ndarray], keys: list[np.ndarray], count: int, step: int) -> int:
    """Add ``step`` to the ``count`` lines with the largest key in [0, QUANTUM) (keys < 0
    never chosen), ties to the earlier line. A histogram finds the threshold in O(n); the
    lines above it are changed through a mask, only the tied ones are looked up."""
    histogram: np.ndarray | None = None
    small = []
    for key in keys:
        counted = key if step > 0 else key[key >= 0]
        if counted.size < 64:  # e.g. a landlord line: no histogram of its own
            small.append(counted)
        elif histogram is None:
            histogram = np.bincount(counted, minlength=QUANTUM)
        else:
            histogram += np.bincount(counted, minlength=QUANTUM)
    if histogram is None:
        histogram = np.zeros(QUANTUM, dtype=np.int64)
    for counted in small:
        np.add.at(histogram, counted, 1)
    if count > int(histogram.sum()):
        raise ConservationError(f"{count} leftover cents but only {int(histogram.sum())} lines "
                                "can take them")
    from_top = np.cumsum(histogram[::-1])
    position = int(np.searchsorted(from_top, count))
    threshold = QUANTUM - 1 - position
    ties = count - (int(from_top[position - 1]) if position > 0 else 0)
    given = count - ties  # the lines above the threshold, from the histogram
    for c, key in zip(cents, keys, strict=True):
        above = key > threshold
        if step > 0:
            c += above
        else:
            c -= above
        if ties:
            tied = np.flatnonzero(key == threshold)[:ties]
            c[tied] += step
            ties -= tied.size
            given += tied.size
    return given
