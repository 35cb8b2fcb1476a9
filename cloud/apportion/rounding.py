"""Largest-remainder rounding of one pot into integer cents (docs/domain.md §4, Money).

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

The lines with the largest remainders are found by selection, not by sorting: the
remainders (14 bits each) are kept as ``uint16`` and the leftover-th largest is found in
linear time (on large pots by counting the remainders above guesses that a sorted sample
makes, else through a histogram); every line above it gets a cent, and so do the first
lines, in line order, that equal it, as many as are still owed. The grid values are
computed block by block, in blocks that stay in cache, and written once, into the arrays
that are returned; a pot of at most one block's lines is rounded as one array. A part may
be given as weights and a scale (the shares are their products, computed block by block;
decision 0037).

A pot of more than one block's lines is rounded in one grid pass (:func:`_round_guessed`,
decision 0037's follow-up): a sample of its lines guesses the threshold, the pass writes
whole cents plus one above the guess, and once the exact leftover is known the lines
between the guess and the exact threshold (a few thousand of millions) move by a cent, so
that the cents are those the selection above gives. A pot the pass cannot take (a share
not finite or past 2⁶² grid units, a leftover outside 0 … lines) is rounded by selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cloud.apportion import arrays
from cloud.apportion.errors import ConservationError
from cloud.apportion.rounding_grid import (
    _GRID_LIMIT,
    _OFFSET,
    _ROUNDER,
    _ROUNDER_BITS,
    COUNT_BLOCK,
    GRID_BITS,
    QUANTUM,
    ROUNDING_BLOCK,
    _kth_largest,
    _signed,
)
from cloud.apportion.rounding_pass import GUESS_FROM, _round_guessed


def largest_remainder(total_cents: int, ideal_cents: np.ndarray) -> np.ndarray:
    """Split ``total_cents`` into integer cents following ``ideal_cents`` (one array).

    See :func:`largest_remainder_parts`; this is the one-part case.
    """
    return largest_remainder_parts(total_cents, [ideal_cents])[0]


def largest_remainder_parts(
    total_cents: int,
    parts: Sequence[np.ndarray],
    out: Sequence[np.ndarray] | None = None,
    scales: Sequence[float] | None = None,
) -> list[np.ndarray]:
    """Split ``total_cents`` into integer cents over lines held in several arrays.

    Parameters
    ----------
    total_cents : int
        The pot [cents].
    parts : sequence of float64 arrays
        The lines' shares at full precision [cents], ≥ 0, summing to ``total_cents``; the
        line order (the tie-break key) is part by part, then index within a part.
    out : sequence of int64 arrays, optional
        Where to write the cents, one contiguous array per part of the part's size (e.g.
        made by the thread that keeps them); new arrays when omitted.
    scales : sequence of float, optional
        One factor per part: the lines' shares are then ``part * scale`` [cents] (a key's
        weights and the pot's cents per weight), computed here block by block instead of
        being held as an array of their own; the same floats as ``part * scale``.

    Returns
    -------
    list of int64 arrays, one per part
        Cents per line, Σ over all parts = ``total_cents``; each within one cent of its
        ideal share (the ``out`` arrays when given).

    Raises
    ------
    ConservationError
        The leftover after flooring is more cents than there are lines: the ideal shares
        do not add up to the pot.
    """
    if out is not None and (
        len(out) != len(parts)
        or any(
            o.dtype != np.int64 or o.shape != p.shape or not o.flags.c_contiguous
            for o, p in zip(out, parts, strict=False)
        )
    ):
        raise ValueError("out must hold one contiguous int64 array per part, of its shape")
    if scales is not None and len(scales) != len(parts):
        raise ValueError("scales must hold one factor per part")
    if len(parts) > 1 and sum(p.size for p in parts) <= ROUNDING_BLOCK:
        # a small pot: its lines in one array (the same order) cost a few calls, not a
        # few per part
        if scales is not None:
            parts = [p * s for p, s in zip(parts, scales, strict=True)]
        joined = largest_remainder_parts(total_cents, [np.concatenate(parts)])[0]
        bounds = np.cumsum([p.size for p in parts[:-1]])
        if out is None:
            return np.split(joined, bounds)
        for o, c in zip(out, np.split(joined, bounds), strict=True):
            o[...] = c
        return list(out)
    lines = sum(p.size for p in parts)
    spare = _spare_remainders(lines)
    try:
        if lines > GUESS_FROM:
            rounded = _round_guessed(total_cents, parts, out, scales, spare[:lines])
            if rounded is not None:
                return rounded
        return _round(total_cents, parts, out, scales, spare[:lines])
    finally:
        _keep_remainders(spare)


def _round(
    total_cents: int,
    parts: Sequence[np.ndarray],
    out: Sequence[np.ndarray] | None,
    scales: Sequence[float] | None,
    remainders: np.ndarray,
) -> list[np.ndarray]:
    """:func:`largest_remainder_parts` of a pot of more than one block's lines, with
    ``remainders`` (uint16, one per line) to work in."""
    cents, floor_sum = _grid(parts, out, scales, remainders)
    lines = remainders.size
    leftover = total_cents - floor_sum
    if abs(leftover) > lines:
        raise ConservationError(
            f"floored shares sum to {floor_sum} cents over {lines} lines, the pot is "
            f"{total_cents} cents"
        )
    if leftover >= 0:
        threshold, ties = _select(remainders, leftover)
        for c in cents:
            _floor_plus_above(c, threshold)
        first = _first_equal(remainders, threshold, ties)
        given = leftover - ties
        step = 1
    else:
        # the grid rounded some shares up to a whole cent; take back from the smallest
        # remainders among lines that have a cent to give
        for c in cents:
            _floor_plus_above(c, QUANTUM - 1)  # whole cents
        floored = np.concatenate(cents)
        spare = np.where(floored >= 1, QUANTUM - 1 - remainders.astype(np.int32), -1)
        threshold, ties = _select(spare, -leftover)
        if threshold < 0:
            raise ConservationError(
                f"{-leftover} cents to take back but only "
                f"{int(np.count_nonzero(spare >= 0))} lines have one"
            )
        taken = spare > threshold
        start = 0
        for c in cents:
            c -= taken[start : start + c.size]
            start += c.size
        first = np.flatnonzero(spare == threshold)[:ties] if ties else None
        given = leftover + ties
        step = -1
    if first is not None:
        start = 0
        for c in cents:
            mine = first[(first >= start) & (first < start + c.size)] - start
            c[mine] += step
            given += step * mine.size
            start += c.size
    if floor_sum + given != total_cents:
        raise ConservationError(
            f"rounded lines sum to {floor_sum + given} cents, the pot is {total_cents}"
        )
    return cents


#: Pots from this many lines round in remainder arrays kept from one rounding to the next
#: (two at most: one per thread rounding at once), not in fresh memory every time.
SPARE_FROM = 1 << 18
_spares: list[np.ndarray] = []


def _spare_remainders(lines: int) -> np.ndarray:
    """A uint16 array of at least ``lines`` to hold a pot's remainders: a kept one when
    the pot is large and one is free and large enough, else a new one."""
    if lines >= SPARE_FROM:
        try:
            spare = _spares.pop()  # (atomic: threads rounding at once take different ones)
        except IndexError:
            pass
        else:
            if spare.size >= lines:
                return spare
    return arrays.empty(lines, np.uint16)


def _keep_remainders(spare: np.ndarray) -> None:
    """Keep a large pot's remainder array for the next rounding (two at most)."""
    if spare.size >= SPARE_FROM and len(_spares) < 2:
        _spares.append(spare)


def _grid(
    parts: Sequence[np.ndarray],
    out: Sequence[np.ndarray] | None,
    scales: Sequence[float] | None,
    remainders: np.ndarray,
) -> tuple[list[np.ndarray], int]:
    """Each line on the grid, block by block in a core's cache: the grid values + 2⁵¹
    [1/QUANTUM cent] in int64 arrays (``out``, or new ones; one per part) and Σ whole
    cents; the remainders written into ``remainders`` (uint16) in line order.

    A grid value is ``rint(share × QUANTUM)``, taken through the rounder: the share plus
    1.5 × 2⁵² is rounded to a whole number (to even on a tie, as ``rint``), whose bit
    pattern less the rounder's is the grid value; a block with a value out of the
    rounder's range takes ``rint`` and a cast instead.
    """
    block = max(1, min(ROUNDING_BLOCK, max((p.size for p in parts), default=0)))
    buffer = np.empty(block)
    bits = buffer.view(np.int64)
    cents: list[np.ndarray] = []
    grid_sum = remainder_sum = 0
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
            scaled = np.multiply(ideal[start:stop], factor, out=buffer[:size])
            np.add(scaled, _ROUNDER, out=scaled)
            np.subtract(bits[:size], _ROUNDER_BITS - _OFFSET, out=chunk)
            if int(chunk.view(np.uint64).max()) >= 2 * _GRID_LIMIT:
                np.multiply(ideal[start:stop], factor, out=scaled)
                np.rint(scaled, out=scaled)
                np.copyto(chunk, scaled, casting="unsafe")
                chunk += _OFFSET
            # the int64 sum wraps around 2⁶⁴; less the offsets, what is left is the grid
            # values' sum (which fits)
            grid_sum += _signed(int(chunk.sum()) - size * _OFFSET)
            remainder = remainders[offset + start : offset + stop]
            np.copyto(remainder, chunk, casting="unsafe")  # the low 16 bits
            remainder &= QUANTUM - 1
            # ≤ 2¹⁷ remainders < 2¹⁴ each: their sum fits 32 bits (a faster sum)
            remainder_sum += int(remainder.sum(dtype=np.uint32))
        cents.append(grid)
        offset += ideal.size
    return cents, (grid_sum - remainder_sum) >> GRID_BITS


def _floor_plus_above(grid: np.ndarray, threshold: int) -> None:
    """In place, block by block: grid value + 2⁵¹ → whole cents, plus one where the
    remainder is above ``threshold`` ((grid + QUANTUM − 1 − threshold) >> GRID_BITS)."""
    lift = QUANTUM - 1 - threshold - _OFFSET
    for start in range(0, grid.size, ROUNDING_BLOCK):
        chunk = grid[start : start + ROUNDING_BLOCK]
        chunk += lift
        chunk >>= GRID_BITS


def _select(keys: np.ndarray, count: int) -> tuple[int, int]:
    """The ``count``-th largest key and how many lines equal to it are still to be chosen
    after every line above it (``QUANTUM - 1`` and 0 when ``count`` is 0).

    Exact for any keys. Large arrays of remainders are searched by counting: a sorted,
    evenly strided sample guesses the key, and each guess is checked by counting the keys
    above it (:func:`_select_by_counting`); other large arrays are narrowed to the keys
    between two values of the sample (:func:`_select_in_window`). When the guesses do not
    settle or the bracket misses (a sample far from the whole), every key is selected from,
    as for small arrays.
    """
    if count == 0:
        return QUANTUM - 1, 0
    if keys.size > SELECT_SAMPLE * 8:
        if keys.dtype == np.uint16:
            found = _select_by_counting(keys, count)
        else:
            found = _select_in_window(keys, count)
        if found is not None:
            return found
    threshold = _kth_largest(keys, count)
    return threshold, count - int(np.count_nonzero(keys > threshold))


#: Guesses :func:`_select_by_counting` checks before it selects from the keys between
#: the last two (each guess is one count over the keys).
SELECT_PROBES = 12


def _count_above(keys: np.ndarray, value: int, buffer: np.ndarray) -> int:
    """How many ``keys`` are above ``value``, block by block through the ``buffer`` mask."""
    above = 0
    for start in range(0, keys.size, buffer.size):
        chunk = keys[start : start + buffer.size]
        above += int(np.count_nonzero(np.greater(chunk, value, out=buffer[: chunk.size])))
    return above


def _select_by_counting(keys: np.ndarray, count: int) -> tuple[int, int] | None:
    """:func:`_select` for remainders (``uint16`` below QUANTUM) by guessing the key and
    counting the keys above each guess; None when the guesses have not settled it and the
    keys between the last two do not hold it either (then every key is selected from).

    The wanted key ``t`` is the least value with fewer than ``count`` keys above it. The
    search keeps a bracket ``lo ≤ t ≤ hi`` with the exact counts above ``lo − 1`` (at least
    ``count``) and above ``hi`` (fewer). A sorted, evenly strided sample of the keys makes
    every guess: the sample's value whose share of the sampled keys inside the bracket is
    the share still wanted there, or the bracket's middle when the last guess did not halve
    it. Each guess costs one linear count over the ``uint16`` keys; after
    :data:`SELECT_PROBES` of them the keys left inside the bracket are selected from.
    """
    size = keys.size
    sample = np.sort(keys[:: size // SELECT_SAMPLE], kind="stable")
    buffer = np.empty(min(size, COUNT_BLOCK), dtype=bool)
    lo, hi = 0, QUANTUM - 1
    above_lo, above_hi = size, 0  # keys above lo − 1 and above hi
    narrowed = True
    for _ in range(SELECT_PROBES):
        if lo == hi:
            return lo, count - above_hi
        inside = above_lo - above_hi  # keys in the bracket
        first = int(np.searchsorted(sample, lo, side="left"))
        last = int(np.searchsorted(sample, hi, side="right"))
        if narrowed and last - first > 1:
            # the sampled keys in the bracket, as many from its top as keys are wanted
            at = last - round((count - above_hi) / inside * (last - first))
            guess = int(sample[min(max(at, first), last - 1)])
        else:
            guess = (lo + hi) // 2
        guess = min(max(guess, lo), hi - 1)
        above = _count_above(keys, guess, buffer)
        if above < count:
            hi, above_hi = guess, above
        else:
            lo, above_lo = guess + 1, above
        narrowed = 4 * (above_lo - above_hi) <= 3 * inside
    if lo == hi:
        return lo, count - above_hi
    inside = keys[(keys >= lo) & (keys <= hi)]
    wanted = count - above_hi  # chosen from inside the bracket (≥ 1, ≤ inside.size)
    if not 1 <= wanted <= inside.size:
        return None
    threshold = _kth_largest(inside, wanted)
    return threshold, wanted - int(np.count_nonzero(inside > threshold))


def _first_equal(keys: np.ndarray, value: int, number: int) -> np.ndarray | None:
    """Indices of the first ``number`` keys equal to ``value`` in order (None for none),
    found block by block and no further than the last one needed."""
    if not number:
        return None
    found = []
    buffer = np.empty(min(keys.size, COUNT_BLOCK), dtype=bool)
    for start in range(0, keys.size, buffer.size):
        chunk = keys[start : start + buffer.size]
        equal = np.equal(chunk, value, out=buffer[: chunk.size])
        if equal.any():
            at = np.flatnonzero(equal)[:number]
            found.append(at + start)
            number -= at.size
            if not number:
                break
    return np.concatenate(found)


#: Sample size from which :func:`_select` brackets the wanted key.
SELECT_SAMPLE = 1 << 14


def _select_in_window(keys: np.ndarray, count: int) -> tuple[int, int] | None:
    """:func:`_select` through a sampled bracket; None when the bracket misses the key."""
    # (a stable sort of 16-bit keys is a radix sort: linear)
    sample = np.sort(keys[:: keys.size // SELECT_SAMPLE], kind="stable")
    # the wanted key's rank in the sample, ± 6 standard deviations of a sampled rank
    rank = (keys.size - count) / keys.size * (sample.size - 1)
    spread = 6.0 * np.sqrt(sample.size * 0.25) + 2
    low = sample[max(int(rank - spread), 0)]
    high = sample[min(int(rank + spread) + 1, sample.size - 1)]
    above = int(np.count_nonzero(keys > high))  # lines above the bracket: all chosen
    if above >= count:
        return None
    inside = keys[(keys >= low) & (keys <= high)]
    wanted = count - above  # chosen from inside the bracket
    if wanted > inside.size:
        return None
    threshold = _kth_largest(inside, wanted)
    return threshold, count - above - int(np.count_nonzero(inside > threshold))
