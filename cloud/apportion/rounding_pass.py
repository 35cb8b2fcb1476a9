"""One grid pass for a large pot (decision 0037's follow-up): a sample of its lines guesses
the threshold, the pass writes whole cents plus one above the guess, and once the exact
leftover is known the lines between the guess and the exact threshold (a few thousand of
millions) move by a cent, so that the cents are those :mod:`cloud.apportion.rounding`'s
selection gives. Pure numpy, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cloud.apportion.errors import ConservationError
from cloud.apportion.rounding_grid import (
    _CENT_ROUNDER,
    _CENT_ROUNDER_BITS,
    _GRID_LIMIT,
    _ROUNDER,
    _ROUNDER_BITS,
    COUNT_BLOCK,
    GRID_BITS,
    QUANTUM,
    ROUNDING_BLOCK,
    _kth_largest,
)

#: Pots of more lines than this are rounded in one pass with a guessed threshold
#: (:func:`_round_guessed`); smaller ones, and any the guessed pass hands back, as before.
GUESS_FROM = ROUNDING_BLOCK
#: Lines of a pot sampled for the guess, in runs of :data:`GUESS_RUN` (line order).
GUESS_SAMPLE = 1 << 14
GUESS_RUN = 64


def _round_guessed(
    total_cents: int,
    parts: Sequence[np.ndarray],
    out: Sequence[np.ndarray] | None,
    scales: Sequence[float] | None,
    remainders: np.ndarray,
) -> list[np.ndarray] | None:
    """:func:`largest_remainder_parts` of a large pot, its cents written in the grid pass.

    A strided sample of the lines guesses the threshold ``g``: the grid pass writes each
    line's whole cents plus one where its remainder is above ``g`` (in cache, block by
    block) and counts those lines. Once the pass has given the exact leftover, the few
    lines between the guess and the exact threshold are found in one pass over the
    ``uint16`` remainders and moved by a cent, as many as the guess was off; the result is
    the cents the exact selection gives (the same lines, ties in line order).

    Returns None, having written nothing that :func:`_round` does not overwrite, when a
    share is not a finite number below 2⁶² grid units or the leftover is not 0 …
    ``lines``: :func:`_round` then rounds the pot (and raises what it raises).
    """
    lines = remainders.size
    sample = _sampled_remainders(parts, scales, lines)
    guess = _guess(sample)
    passed = _grid_lifted(parts, out, scales, remainders, guess)
    if passed is None:
        return None
    cents, lifted_sum, above = passed
    floor_sum = lifted_sum - above
    leftover = total_cents - floor_sum
    if not 0 <= leftover <= lines:
        return None
    given = above
    if leftover > above:
        given += _add_below(cents, remainders, sample, guess, leftover - above)
    elif leftover < above:
        given -= _take_above(cents, remainders, sample, guess, above - leftover)
    if floor_sum + given != total_cents:
        raise ConservationError(
            f"rounded lines sum to {floor_sum + given} cents, the pot is {total_cents}"
        )
    return cents


def _sampled_remainders(
    parts: Sequence[np.ndarray], scales: Sequence[float] | None, lines: int
) -> np.ndarray:
    """The grid remainders [1/QUANTUM cent] of about :data:`GUESS_SAMPLE` lines, in runs of
    :data:`GUESS_RUN` consecutive lines spread evenly over the pot (line order across the
    parts: a run reads a few cache lines, not one per value), sorted; non-finite shares
    left out."""
    stride = max(GUESS_RUN, lines * GUESS_RUN // GUESS_SAMPLE)
    starts = np.arange(0, lines - GUESS_RUN + 1, stride)
    index = (starts[:, None] + np.arange(GUESS_RUN)).reshape(-1)
    bounds = np.searchsorted(index, np.cumsum([0] + [p.size for p in parts]))
    taken = []
    offset = 0
    for i, ideal in enumerate(parts):
        factor = float(QUANTUM) if scales is None else QUANTUM * float(scales[i])
        taken.append(np.rint(ideal[index[bounds[i] : bounds[i + 1]] - offset] * factor))
        offset += ideal.size
    grid = np.concatenate(taken)
    grid = grid[np.isfinite(grid)]
    return np.sort(np.mod(grid, QUANTUM).astype(np.uint16), kind="stable")


def _guess(sample: np.ndarray) -> int:
    """The threshold a pot's sorted, sampled remainders suggest: the leftover is Σ of the
    remainders ÷ QUANTUM (the shares add up to the pot), so about that many sampled lines
    are owed a cent; the least of them (QUANTUM − 1 when none is)."""
    wanted = round(float(sample.sum()) / QUANTUM)
    if 0 < wanted <= sample.size:
        return int(sample[sample.size - wanted])
    return QUANTUM - 1


def _grid_lifted(
    parts: Sequence[np.ndarray],
    out: Sequence[np.ndarray] | None,
    scales: Sequence[float] | None,
    remainders: np.ndarray,
    guess: int,
) -> tuple[list[np.ndarray], int, int] | None:
    """Each line on the grid, block by block in a core's cache: whole cents plus one where
    the remainder is above ``guess`` in int64 arrays (``out``, or new ones; one per part),
    the remainders [1/QUANTUM cent] in ``remainders`` (uint16, line order); with the Σ of
    those cents and how many lines were given the one. None when a share is not a finite
    number below 2⁶² grid units.

    The grid value ``v = rint(share × QUANTUM)`` comes from the rounder (share × QUANTUM
    + 1.5 × 2⁵², or share + 1.5 × 2³⁸ for a part not scaled: the pattern of either less the
    rounder's is ``v``; exact for |v| < 2⁵¹, ties to even as ``rint``): the pattern plus
    ``lift − rounder`` is ``v + lift`` with ``lift = QUANTUM − 1 − guess``, and ``(v +
    lift) >> GRID_BITS`` is the whole cents plus one exactly where the remainder ``v mod
    QUANTUM`` is above ``guess``. As unsigned, ``v + lift`` below 2⁵¹ + lift comes only
    from a pattern of the rounder's exponent (``v`` in [−lift, 2⁵¹)); a block with any
    other value (larger, more negative, NaN, ∞) takes ``rint``.
    """
    block = max(1, min(ROUNDING_BLOCK, max((p.size for p in parts), default=0)))
    buffer = np.empty(block)
    bits = buffer.view(np.int64)
    higher = np.empty(block, dtype=bool)
    lift = QUANTUM - 1 - guess
    into_lifted = lift - _ROUNDER_BITS
    into_lifted_cents = lift - _CENT_ROUNDER_BITS
    fast_below = _GRID_LIMIT + lift
    cents: list[np.ndarray] = []
    lifted_sum = above = 0
    offset = 0
    for i, ideal in enumerate(parts):
        grid = np.empty(ideal.size, dtype=np.int64) if out is None else out[i]
        # share × QUANTUM: exact (a power of two); and (weight × scale) × QUANTUM is
        # weight × (scale × QUANTUM), the same float
        factor = float(QUANTUM) if scales is None else QUANTUM * float(scales[i])
        for start in range(0, ideal.size, block):
            stop = min(start + block, ideal.size)
            size = stop - start
            chunk = grid[start:stop]
            remainder = remainders[offset + start : offset + stop]
            if factor == QUANTUM:  # share + 1.5 × 2³⁸: the grid's rounder, unscaled
                scaled = np.add(ideal[start:stop], _CENT_ROUNDER, out=buffer[:size])
                np.add(bits[:size], into_lifted_cents, out=chunk)
            else:
                scaled = np.multiply(ideal[start:stop], factor, out=buffer[:size])
                np.add(scaled, _ROUNDER, out=scaled)
                np.add(bits[:size], into_lifted, out=chunk)
            if int(chunk.view(np.uint64).max()) < fast_below:
                # the pattern's low bits are v's (the rounder's end in 51 zero bits)
                np.copyto(remainder, bits[:size], casting="unsafe")
                wide = False
            else:
                np.multiply(ideal[start:stop], factor, out=scaled)
                if not (np.isfinite(scaled).all() and float(np.abs(scaled).max()) < 2.0**62):
                    return None
                np.rint(scaled, out=scaled)
                np.copyto(chunk, scaled, casting="unsafe")
                np.copyto(remainder, chunk, casting="unsafe")  # the low 16 bits
                chunk += lift
                wide = True
            remainder &= QUANTUM - 1
            above += int(np.count_nonzero(np.greater(remainder, guess, out=higher[:size])))
            chunk >>= GRID_BITS
            if wide:  # cents up to 2⁴⁸: summed in two halves that cannot overflow
                lifted_sum += (int((chunk >> 24).sum()) << 24) + int((chunk & 0xFFFFFF).sum())
            else:  # below 2³⁸ each, 2¹⁷ lines: the int64 sum cannot overflow
                lifted_sum += int(chunk.sum())
        cents.append(grid)
        offset += ideal.size
    return cents, lifted_sum, above


def _in_window(keys: np.ndarray, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (ascending) and values of the ``keys`` (uint16) in [``low``, ``high``],
    block by block."""
    block = min(keys.size, COUNT_BLOCK)
    shifted = np.empty(block, dtype=np.uint16)
    inside = np.empty(block, dtype=bool)
    positions, values = [], []
    for start in range(0, keys.size, block):
        chunk = keys[start : start + block]
        size = chunk.size
        # below ``low`` wraps round to above ``high − low``: one comparison
        np.subtract(chunk, low, out=shifted[:size])
        at = np.flatnonzero(np.less_equal(shifted[:size], high - low, out=inside[:size]))
        if at.size:
            positions.append(at + start)
            values.append(chunk[at])
    if not positions:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint16)
    return np.concatenate(positions), np.concatenate(values)


def _sampled_span(sample: np.ndarray, lines: int, wanted: int) -> int:
    """How many sampled remainders to step over from the guess so that the window holds
    ``wanted`` lines with room (six standard deviations of a sampled count, and two)."""
    expected = wanted * sample.size / lines
    return int(np.ceil(expected + 6.0 * np.sqrt(expected) + 2))


def _add_below(
    cents: list[np.ndarray], keys: np.ndarray, sample: np.ndarray, guess: int, owed: int
) -> int:
    """The guess was too high: give ``owed`` more lines a cent, those with the largest
    remainders at or below ``guess`` (ties in line order). Returns ``owed``."""
    at = int(np.searchsorted(sample, guess, side="right"))
    span = _sampled_span(sample, keys.size, owed)
    low = int(sample[at - span]) if span < at else 0
    positions, values = _in_window(keys, low, guess)
    if positions.size < owed and low > 0:
        positions, values = _in_window(keys, 0, guess)
    threshold = _kth_largest(values, owed)
    higher = values > threshold
    ties = owed - int(np.count_nonzero(higher))
    chosen = positions[higher | _first_true(values == threshold, ties)]
    _shift_cents(cents, chosen, 1)
    return owed


def _take_above(
    cents: list[np.ndarray], keys: np.ndarray, sample: np.ndarray, guess: int, excess: int
) -> int:
    """The guess was too low: take the cent back from ``excess`` lines, those with the
    smallest remainders above ``guess`` (of a tie, the latest lines). Returns ``excess``."""
    at = int(np.searchsorted(sample, guess, side="right"))
    span = _sampled_span(sample, keys.size, excess + 1)
    high = int(sample[at + span - 1]) if at + span - 1 < sample.size else QUANTUM - 1
    positions, values = _in_window(keys, guess + 1, high)
    if positions.size <= excess and high < QUANTUM - 1:
        positions, values = _in_window(keys, guess + 1, QUANTUM - 1)
    if positions.size == excess:  # every line above the guess (no cent was owed)
        _shift_cents(cents, positions, -1)
        return excess
    # the exact threshold: the (excess + 1)-th smallest remainder above the guess; below
    # it every line gives its cent back, at it the latest ones, as many as still owed
    threshold = _kth_largest(values, values.size - excess)
    lower = values < threshold
    back = excess - int(np.count_nonzero(lower))
    chosen = positions[lower | _last_true(values == threshold, back)]
    _shift_cents(cents, chosen, -1)
    return excess


def _first_true(mask: np.ndarray, number: int) -> np.ndarray:
    """``mask`` with only its first ``number`` True entries kept."""
    kept = np.zeros_like(mask)
    kept[np.flatnonzero(mask)[:number]] = True
    return kept


def _last_true(mask: np.ndarray, number: int) -> np.ndarray:
    """``mask`` with only its last ``number`` True entries kept."""
    kept = np.zeros_like(mask)
    if number:
        kept[np.flatnonzero(mask)[-number:]] = True
    return kept


def _shift_cents(cents: list[np.ndarray], positions: np.ndarray, step: int) -> None:
    """Add ``step`` to the lines at ``positions`` (ascending, unique; line order across
    the parts' arrays)."""
    bounds = np.cumsum([0] + [c.size for c in cents])
    cut = np.searchsorted(positions, bounds)
    for i, c in enumerate(cents):
        mine = positions[cut[i] : cut[i + 1]] - bounds[i]
        if mine.size:
            c[mine] += step
