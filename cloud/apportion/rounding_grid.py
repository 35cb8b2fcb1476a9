"""The grid the rounding works on, and what its passes share (:mod:`cloud.apportion.rounding`
and its one-pass rounding of large pots, :mod:`cloud.apportion.rounding_pass`): the grid of
ideal shares in parts of a cent, the float rounders that put a share on it, the block
sizes, and selecting the ``count``-th largest remainder. Pure numpy, no I/O."""

from __future__ import annotations

import numpy as np

#: Grid of the ideal shares, in parts of a cent (a power of two).
GRID_BITS = 14
QUANTUM = 1 << GRID_BITS
#: Lines per block of the rounding passes: 2¹⁷ float64 and int64 are 1 MiB each, within a
#: core's L2 or the shared L3 cache; longer blocks spend less on the calls of the passes
#: (about ten per block) than shorter ones gain in cache (measured on 3M-line pots).
ROUNDING_BLOCK = 1 << 17

#: 1.5 × 2⁵²: a float64 of magnitude below 2⁵¹ added to it is rounded to a whole number
#: (to even on a tie, as ``np.rint``), which is then the low bits of the sum's pattern.
_ROUNDER = float(3 << 51)
_ROUNDER_BITS = int(np.array(_ROUNDER).view(np.int64))
#: 1.5 × 2³⁸: a share [cents] of magnitude below 2³⁷ added to it is rounded to the grid
#: (whole 2⁻¹⁴ cents, ties to even), whose count is then the low bits of the sum's pattern,
#: as the rounder's of share × QUANTUM (the same value scaled by a power of two).
_CENT_ROUNDER = float(3 << 37)
_CENT_ROUNDER_BITS = int(np.array(_CENT_ROUNDER).view(np.int64))
#: Grid values the rounder gives exactly: [−2⁵¹, 2⁵¹); any other value, NaN or ∞ gives a
#: pattern of another sign or exponent.
_GRID_LIMIT = 1 << 51
#: The grid values are held offset by 2⁵¹ until whole cents are taken (a multiple of
#: QUANTUM: the remainders are the same), so that the rounder's range is [0, 2⁵²) read
#: as unsigned: one comparison with the block's largest value.
_OFFSET = _GRID_LIMIT
#: Keys per block when counting or finding keys (512 KiB of ``uint16``: few calls, and a
#: mask that stays in a core's cache rather than one as large as the keys).
COUNT_BLOCK = 1 << 18


def _signed(value: int) -> int:
    """A sum taken modulo 2⁶⁴, as the signed 64-bit number it stands for."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _kth_largest(keys: np.ndarray, count: int) -> int:
    """The ``count``-th largest of ``keys`` (1 ≤ ``count`` ≤ size): remainders (``uint16``)
    through their histogram, other keys by partial sorting (both linear in the size)."""
    if keys.dtype == np.uint16:
        # below[v] = keys ≤ v; the answer is the least v with fewer than ``count`` above it
        below = np.cumsum(np.bincount(keys))
        return int(np.searchsorted(below, keys.size - count, side="right"))
    kth = keys.size - count
    return int(np.partition(keys, kth)[kth])
