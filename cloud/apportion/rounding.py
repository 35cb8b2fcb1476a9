"""Largest-remainder rounding of one pot into integer cents (DOMAIN.md §4, Money).

Each pot (a bill amount per register and tariff version) is rounded once: every line's
ideal share is floored, and the cents left over go one each to the lines with the largest
remainders, ties broken by line order (the caller's stable key). The result sums to the pot
exactly, because the leftover is computed in integers.

Ideal shares come from float64 arithmetic. Before flooring they are put on a grid of
``1 / QUANTUM`` cent, so that shares equal in exact arithmetic (e.g. 4/3 and 1/3 cent, whose
float remainders differ in the last bit) have equal remainders and are ordered by the
tie-break, as a person computing by hand would order them. float64 error on a pot of
10¹⁰ cents is about 10⁻⁶ cent, well inside the grid.
"""

from __future__ import annotations

import numpy as np

from cloud.apportion.errors import ConservationError

#: Grid of the ideal shares, in parts of a cent.
QUANTUM = 10_000


def largest_remainder(total_cents: int, ideal_cents: np.ndarray) -> np.ndarray:
    """Split ``total_cents`` into integer cents following ``ideal_cents``.

    Parameters
    ----------
    total_cents : int
        The pot [cents], ≥ 0.
    ideal_cents : float64 array (lines,)
        Each line's share at full precision [cents], ≥ 0, summing to ``total_cents``.

    Returns
    -------
    int64 array (lines,)
        Cents per line, Σ = ``total_cents``; each within one cent of its ideal share.

    Raises
    ------
    ConservationError
        The ideal shares do not add up to the pot (more than float noise apart).
    """
    lines = ideal_cents.size
    ideal_sum = float(ideal_cents.sum())
    tolerance = 1e-6 * max(1.0, abs(total_cents)) + 1e-9 * lines
    if abs(ideal_sum - total_cents) > tolerance or (lines == 0 and total_cents != 0):
        raise ConservationError(
            f"ideal shares sum to {ideal_sum:.6f} cents over {lines} lines, the pot is "
            f"{total_cents} cents"
        )
    grid = np.rint(ideal_cents * QUANTUM).astype(np.int64)
    np.maximum(grid, 0, out=grid)
    cents = grid // QUANTUM
    remainder = grid - cents * QUANTUM
    leftover = total_cents - int(cents.sum())
    if leftover > 0:
        cents[_largest(remainder, leftover)] += 1
    elif leftover < 0:
        # the grid rounded some shares up to a whole cent; take back from the smallest
        # remainders among lines that have a cent to give
        spare = np.where(cents > 0, QUANTUM - 1 - remainder, -1)
        cents[_largest(spare, -leftover)] -= 1
    return cents


def _largest(key: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` largest ``key`` values in [0, QUANTUM), ties to lower index.

    A histogram of the keys finds the threshold in O(n), instead of a sort.
    """
    eligible = key >= 0
    if count > int(eligible.sum()):
        raise ConservationError(
            f"{count} leftover cents but only {int(eligible.sum())} lines to take them"
        )
    histogram = np.bincount(key[eligible], minlength=QUANTUM)
    from_top = np.cumsum(histogram[::-1])
    position = int(np.searchsorted(from_top, count))
    threshold = QUANTUM - 1 - position
    above = int(from_top[position - 1]) if position > 0 else 0
    chosen = np.flatnonzero(key > threshold)
    ties = np.flatnonzero(key == threshold)[: count - above]
    return np.concatenate([chosen, ties])
