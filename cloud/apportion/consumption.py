"""Consumption from cumulative register readings at day boundaries (docs/domain.md §4, usage Δ).

Registers are the meters' cumulative counters (kWh, m³ ...) frozen at local midnight: an
array ``registers[meter, boundary, register]`` with boundary ``k`` = the start of day ``k``
of the period (``k = 0 .. D``) and NaN where no reading exists. Consumption over days
``[a, b)`` is ``(U[b] − U[a]) × multiplier`` where ``U`` is the register made continuous:

- rollover: a drop of the register is taken as a wrap at ``capacity`` (Δ = current +
  capacity − previous) only when that Δ is plausible against the meter's average daily use
  (at most ``plausibility`` × average × days); an implausible wrap is flagged and its days
  are treated as missing (they get estimated, and the run is held);
- a decreasing register is an error unless the meter is bidirectional (net metering keeps
  negative Δ) or has a capacity (rollover candidate);
- between two readings the register is interpolated linearly by days (prorated);
- before the first and after the last reading of a meter's active range the days are
  *missing*: they are returned as counts for :mod:`cloud.apportion.estimation`.

Most meters have every boundary read and a non-decreasing register: :func:`fast_slice_energy`
finds them in one cache-sized pass and computes their consumption as plain differences of
the readings at the slice boundaries. Only the other rows go through
:func:`unwrap_registers`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from cloud.apportion import arrays
from cloud.apportion.errors import ConsumptionError

#: Rows per block in :func:`fast_slice_energy`: 4096 × 32 × 4 float64 is 4 MiB, in the
#: shared L3 cache; a block costs about ten calls, which on shorter blocks cost more than
#: the cache they save (measured at 1,000,000 meters).
SCREEN_BLOCK_ROWS = 4096
#: Threads :func:`fast_slice_energy` screens a large array on.
SCREEN_THREADS = 2
#: Blocks a screening thread takes at a time (the threads take the next ones as they go,
#: so that one slowed down by the machine leaves more to the other).
SCREEN_CLAIM_BLOCKS = 8


def screen_threads(meters: int, block_rows: int = SCREEN_BLOCK_ROWS) -> int:
    """How many threads :func:`fast_slice_energy` screens ``meters`` rows on:
    :data:`SCREEN_THREADS` from 64 blocks of ``block_rows`` up on a machine with more
    than one CPU, else one."""
    if meters >= 64 * block_rows and (os.cpu_count() or 1) > 1:
        return SCREEN_THREADS
    return 1


def fast_slice_energy(
    registers: np.ndarray,
    breakpoints: np.ndarray,
    multiplier: np.ndarray,
    block_rows: int = SCREEN_BLOCK_ROWS,
    beside: Callable[[], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Screen every meter in one pass and compute the consumption of those that need no
    repair: Δ = (reading at the slice end − reading at its start) × multiplier.

    A row needs no repair when every boundary is read and its registers never decrease;
    the other rows' energies are left unset here and come from :func:`unwrap_registers`.
    Blocks of rows are compared and differenced while they sit in cache; large arrays are
    screened on :func:`screen_threads` threads, which take runs of
    :data:`SCREEN_CLAIM_BLOCKS` blocks in turn until none is left.

    Parameters
    ----------
    registers : float64 array (meters, boundaries, registers)
        Cumulative register values [register unit], NaN where not read.
    breakpoints : int array (slices + 1,)
        Slice boundaries (boundary indices).
    multiplier : float64 array (meters, slices)
        CT × PT ratio per slice [kWh per register unit].
    block_rows : int
        Meters per block.
    beside : callable, optional
        Work that does not need the consumption: the calling thread does it first (while
        the other thread screens, on a large array) and then screens what is left.

    Returns
    -------
    ok : bool array (meters,)
        True where ``registers[:, k + 1] >= registers[:, k]`` everywhere (NaN compares
        false, so one comparison finds gaps and drops alike).
    kwh : float64 array (meters, slices, registers)
        Consumption per slice [kWh] (docs/domain.md §4), valid where ``ok``; a view of a
        register-major array.
    """
    meters, boundaries, nreg = registers.shape
    slices = breakpoints.size - 1
    ok = np.ones(meters, dtype=bool)
    # kept register by register: one register's slices of every meter are contiguous
    # (what a pot of that register reads); returned as a (meters, slices, registers) view
    by_register = arrays.empty((nreg, meters, slices))
    kwh = by_register.transpose(1, 2, 0)
    if meters == 0:
        if beside is not None:
            beside()
        return ok, kwh
    width = boundaries * nreg
    flat_all = np.ascontiguousarray(registers).reshape(meters, width)
    readings = flat_all.reshape(meters, boundaries, nreg)
    # each slice's first and last boundary
    ends = list(zip(breakpoints[:-1].tolist(), breakpoints[1:].tolist(), strict=True))
    claim_rows = block_rows * SCREEN_CLAIM_BLOCKS
    claims = itertools.count()  # (next() on it is atomic: the threads share it)

    def screen() -> None:
        rising_buffer = np.empty(block_rows * width, dtype=bool)
        if nreg % 4 == 0:
            # a row's last registers' comparisons, four flags to a 32-bit word: set in a
            # quarter of the writes
            straddling = rising_buffer.view(np.uint32).reshape(block_rows, width // 4)
            straddling = straddling[:, width // 4 - nreg // 4 :]
            true = 0x01010101
        else:
            straddling = rising_buffer.reshape(block_rows, width)[:, width - nreg :]
            true = True
        while (first := next(claims) * claim_rows) < meters:
            last = min(meters, first + claim_rows)
            # × 1 changes no value: spared on the runs where every multiplier is 1
            unit = bool((multiplier[first:last] == 1.0).all())
            for start in range(first, last, block_rows):
                stop = min(last, start + block_rows)
                rows = stop - start
                flat = flat_all[start:stop].reshape(-1)
                # the block shifted by one boundary against itself, in one contiguous
                # comparison; the comparisons that straddle two rows (a row's last
                # boundary against the next row's first) are then overwritten with True
                rising = rising_buffer[: flat.size]
                np.greater_equal(flat[nreg:], flat[:-nreg], out=rising[:-nreg])
                straddling[:rows] = true
                if not rising.all():
                    ok[start:stop] = rising.reshape(rows, width).all(axis=1)
                # one slice at a time, every register in one call: a strided pass over
                # the rows of the block (in cache) into a contiguous run of the result
                # per register
                out = by_register[:, start:stop]  # (registers, rows, slices)
                for j, (begin, end) in enumerate(ends):
                    np.subtract(
                        readings[start:stop, end].T, readings[start:stop, begin].T, out=out[:, :, j]
                    )
                if not unit:
                    out *= multiplier[start:stop][None, :, :]

    threads = screen_threads(meters, block_rows)
    if threads == 1:
        if beside is not None:
            beside()
        screen()
        return ok, kwh
    with ThreadPoolExecutor(max_workers=threads - 1) as pool:
        others = [pool.submit(screen) for _ in range(threads - 1)]
        try:
            if beside is not None:
                beside()
        finally:
            screen()  # (also after a failure beside, so that the others end soon)
            for other in others:
                other.result()
    return ok, kwh


@dataclass(frozen=True)
class Unwrapped:
    """Continuous registers of some meters (the output of :func:`unwrap_registers`).

    ``values`` (rows, boundaries, registers) is the register in its own unit, rollovers
    unwrapped and gaps interpolated, flat where nothing is known; ``missing`` (rows, days,
    registers) marks active days without data; ``rollover`` / ``implausible`` (rows,) mark
    meters with an accepted wrap or with a wrap too large to be believed; ``interpolated``
    (rows, boundaries) marks boundaries inside a gap between two readings (prorated).
    """

    values: np.ndarray
    missing: np.ndarray
    rollover: np.ndarray
    implausible: np.ndarray
    interpolated: np.ndarray


def unwrap_registers(
    registers: np.ndarray,
    *,
    capacity: np.ndarray,
    bidirectional: np.ndarray,
    average_per_day: np.ndarray,
    active_from: np.ndarray,
    active_to: np.ndarray,
    plausibility: float,
    meter_ids: Sequence[str],
    register_names: Sequence[str],
    first_day: date,
) -> Unwrapped:
    """Make registers continuous: rollovers, decreases, gaps (docs/domain.md §4).

    Parameters
    ----------
    registers : float64 array (rows, boundaries, registers)
        Readings [register unit, e.g. kWh before the multiplier], NaN where not read.
    capacity : float64 array (rows,)
        Value at which the register wraps to zero [register unit]; NaN when unknown.
    bidirectional : bool array (rows,)
        Net meters whose register may go down (export); their drops are kept.
    average_per_day : float64 array (rows, registers)
        The meter's known average advance [register unit / day] (history); NaN to use the
        period's own rising intervals instead.
    active_from, active_to : int arrays (rows,)
        The meter's installed boundaries; readings outside are ignored, days outside are
        neither consumed nor missing.
    plausibility : float
        A wrap is accepted when Δ ≤ plausibility × average per day × days of the interval.
    meter_ids, register_names, first_day :
        Used to name the meter, register and date in errors.

    Raises
    ------
    ConsumptionError
        A register decreased on a meter that is neither bidirectional nor has a capacity.
    """
    rows, boundaries, nreg = registers.shape
    days = boundaries - 1
    series = np.ascontiguousarray(registers.transpose(0, 2, 1)).reshape(rows * nreg, boundaries)
    k = np.arange(boundaries)
    lo = np.repeat(active_from, nreg)[:, None]
    hi = np.repeat(active_to, nreg)[:, None]
    known = ~np.isnan(series) & (k >= lo) & (k <= hi)

    last = np.maximum.accumulate(np.where(known, k, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(known, k, boundaries)[:, ::-1], axis=1)[:, ::-1]
    prev = np.empty_like(last)
    prev[:, 0] = -1
    prev[:, 1:] = last[:, :-1]
    step = known & (prev >= 0)
    prev_safe = np.maximum(prev, 0)
    delta = np.where(step, series - np.take_along_axis(series, prev_safe, axis=1), 0.0)
    gap = np.where(step, k - prev, 0)

    cap = np.repeat(capacity, nreg)[:, None]
    bidi = np.repeat(bidirectional, nreg)[:, None]
    falling = step & (delta < 0) & ~bidi
    if (falling & np.isnan(cap)).any():
        s, at = np.argwhere(falling & np.isnan(cap))[0]
        raise ConsumptionError(
            f"meter {meter_ids[s // nreg]!r} register {register_names[s % nreg]}: reading "
            f"{series[s, at]:g} on {first_day + timedelta(days=int(at))} is below the "
            f"previous {series[s, prev[s, at]]:g}; the register may only rise (the meter is "
            "neither bidirectional nor given a capacity for rollover)"
        )
    rising = step & (delta >= 0)
    own_avg = np.where(rising, delta, 0.0).sum(axis=1) / np.maximum(
        np.where(rising, gap, 0).sum(axis=1), 1
    )
    own_avg[~rising.any(axis=1)] = np.nan
    hist = average_per_day.reshape(rows * nreg)
    avg = np.where(np.isnan(hist), own_avg, hist)[:, None]
    wrapped = delta + np.where(np.isnan(cap), 0.0, cap)
    plausible = (wrapped >= 0) & (wrapped <= plausibility * avg * gap)
    rolled = falling & plausible
    implausible = falling & ~plausible
    delta = np.where(rolled, wrapped, np.where(implausible, 0.0, delta))

    cumulative = np.cumsum(delta, axis=1)
    has_prev = last >= 0
    has_next = nxt < boundaries
    first = np.where(known.any(axis=1), nxt[:, 0], boundaries)
    final = last[:, -1]
    at_prev = np.take_along_axis(cumulative, np.maximum(last, 0), axis=1)
    at_next = np.take_along_axis(cumulative, np.minimum(nxt, boundaries - 1), axis=1)
    span = np.maximum(nxt - last, 1)
    inside = has_prev & has_next
    values = np.where(inside, at_prev + (at_next - at_prev) * (k - last) / span, 0.0)
    values = np.where(~has_prev & has_next, at_next, values)
    values = np.where(has_prev & ~has_next, at_prev, values)

    d = np.arange(days)
    covered = (d >= first[:, None]) & (d + 1 <= final[:, None])
    # a day inside an implausible wrap is missing: the wrap's reading is where the next
    # known boundary after the day's start lies
    next_after = nxt[:, 1:]
    bad_gap = np.take_along_axis(implausible, np.minimum(next_after, boundaries - 1), axis=1)
    bad_gap &= next_after < boundaries
    active = (d >= lo) & (d < hi)
    missing = active & ~(covered & ~bad_gap)
    interpolated = (inside & ~known & (k >= lo) & (k <= hi)).reshape(rows, nreg, boundaries)

    return Unwrapped(
        values=values.reshape(rows, nreg, boundaries).transpose(0, 2, 1),
        missing=missing.reshape(rows, nreg, days).transpose(0, 2, 1),
        rollover=rolled.reshape(rows, nreg * boundaries).any(axis=1),
        implausible=implausible.reshape(rows, nreg * boundaries).any(axis=1),
        interpolated=interpolated.any(axis=1),
    )


def slice_energy(at_breakpoints: np.ndarray, multiplier: np.ndarray) -> np.ndarray:
    """Consumption per slice: Δ of the continuous register × the slice's multiplier.

    Parameters
    ----------
    at_breakpoints : float64 array (meters, breakpoints, registers)
        Continuous register at the slice boundaries [register unit].
    multiplier : float64 array (meters, slices)
        CT × PT ratio in force during each slice [kWh per register unit].

    Returns
    -------
    float64 array (meters, slices, registers)
        Consumption [kWh] (docs/domain.md §4: Δ = (current − previous) × multiplier).
    """
    return np.diff(at_breakpoints, axis=1) * multiplier[:, :, None]


def days_per_slice(per_day: np.ndarray, breakpoints: np.ndarray) -> np.ndarray:
    """Sum a (rows, days, registers) array over each slice ``[b_j, b_j+1)`` of days."""
    cumulative = np.zeros((per_day.shape[0], per_day.shape[1] + 1, per_day.shape[2]))
    np.cumsum(per_day, axis=1, out=cumulative[:, 1:])
    return np.diff(cumulative[:, breakpoints], axis=1)
