"""Large arrays that start on a huge-page boundary: fewer, cheaper page faults for a run.

A run writes a few hundred MB of fresh arrays (consumption per meter, node amounts, the
lines' cents); fresh memory costs a page fault and a cleared page per page the first time
it is written. numpy asks the kernel for transparent huge pages (2 MiB) on arrays from
4 MiB up, but an allocation starts on any 4 KiB page, and the parts of it outside whole
aligned 2 MiB pages are faulted in 4 KiB at a time (up to 512 faults at each end; an 8 MiB
array is then a quarter small pages). Started on a 2 MiB boundary, every page of the array
can be a huge page: one fault and one clear per 2 MiB. The array is a view of a slightly
larger one (up to 2 MiB more address space, never written, so never given memory).
"""

from __future__ import annotations

import numpy as np

#: Transparent huge page size on x86-64 and arm64 [bytes].
HUGE_PAGE = 1 << 21
#: Arrays from this size [bytes] are aligned: numpy's own threshold for asking for huge
#: pages (smaller arrays come from the heap as they are).
ALIGN_FROM = 1 << 22


def empty(shape: int | tuple[int, ...], dtype: type | np.dtype = np.float64) -> np.ndarray:
    """``np.empty(shape, dtype)``, C-contiguous, starting on a 2 MiB boundary when large."""
    dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size < ALIGN_FROM:
        return np.empty(shape, dtype)
    raw = np.empty(size + HUGE_PAGE, dtype=np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE
    return raw[start : start + size].view(dtype).reshape(shape)


def zeros(shape: int | tuple[int, ...], dtype: type | np.dtype = np.float64) -> np.ndarray:
    """``np.zeros(shape, dtype)`` for an array that will be written all over (aligned as
    :func:`empty`; a sparsely written array is cheaper from ``np.zeros``, whose untouched
    pages are never given memory)."""
    out = empty(shape, dtype)
    out.fill(0)
    return out
