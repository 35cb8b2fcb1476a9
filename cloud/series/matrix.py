"""Readings as arrays for billing: meters × intervals of register values with a quality code.

Intervals are half-open [edge_k, edge_k+1). Day steps follow the site's local calendar
(Asia/Shanghai by default): each edge is local midnight converted to UTC, so a billing day is
a local day even where the zone shifts for daylight saving. The value of a cell is the last
reading with a value inside that interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

#: quality code per cell; 0 means no reading with a value in the interval
QUALITY_CODES = {"good": 1, "estimated": 2, "suspect": 3, "error": 4, "timeout": 5}
NO_READING = 0
USABLE_CODES = (QUALITY_CODES["good"], QUALITY_CODES["estimated"])
DEFAULT_TZ = "Asia/Shanghai"


def to_ns(moment: datetime) -> int:
    """UTC nanoseconds of an aware datetime (microsecond resolution, exact)."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; series times are UTC")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


_STEP = re.compile(r"^(\d+)\s*(min|h|d)$")


def parse_step(step: str | timedelta) -> timedelta:
    """``"15min"``, ``"1h"``, ``"1d"`` or a timedelta, as a positive timedelta."""
    if isinstance(step, timedelta):
        delta = step
    else:
        m = _STEP.match(step.strip())
        if not m:
            raise ValueError(f"step {step!r}: expected e.g. '15min', '1h' or '1d'")
        n, unit = int(m.group(1)), m.group(2)
        delta = {"min": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]
    if delta <= timedelta(0):
        raise ValueError(f"step must be positive, got {step!r}")
    return delta


def interval_edges(
    start: datetime, end: datetime, step: str | timedelta, tz: str = DEFAULT_TZ
) -> np.ndarray:
    """Edges (UTC ns, int64) of the intervals covering [start, end).

    Whole-day steps advance the local wall clock of ``tz`` (calendar days); shorter steps
    advance absolute time. ``end`` is the last edge; it must lie on the step grid.
    """
    delta = parse_step(step)
    if end <= start:
        raise ValueError(f"end {end.isoformat()} must be after start {start.isoformat()}")
    edges = []
    if delta % timedelta(days=1) == timedelta(0):
        zone = ZoneInfo(tz)
        local = start.astimezone(zone).replace(tzinfo=None)
        moment = start
        while moment < end:
            edges.append(to_ns(moment))
            local += delta
            moment = local.replace(tzinfo=zone)
    else:
        moment = start
        while moment < end:
            edges.append(to_ns(moment))
            moment += delta
    if moment != end:
        raise ValueError(
            f"[{start.isoformat()}, {end.isoformat()}) is not a whole number of {step!r} steps"
        )
    edges.append(to_ns(end))
    return np.asarray(edges, dtype=np.int64)


@dataclass(frozen=True)
class RegisterMatrix:
    """``values[m, k]``: the last register value (in the quantity's unit) of meter m in
    interval k, NaN where none; ``quality[m, k]``: its code (QUALITY_CODES, 0 = none)."""

    meters: tuple[str, ...]
    edges_ns: np.ndarray
    values: np.ndarray
    quality: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """True where the cell holds a usable (good or estimated) value."""
        return np.isin(self.quality, USABLE_CODES)


@dataclass(frozen=True)
class ConsumptionMatrix:
    """``usage[m, k]`` = register at the end of interval k − register at the end of interval
    k−1 (the interval before the first is read too); ``mask`` is False where either end is
    missing or not usable, or the register went down (rollover or fault: for the engine)."""

    meters: tuple[str, ...]
    edges_ns: np.ndarray
    usage: np.ndarray
    mask: np.ndarray


def last_per_interval(
    meter_index: np.ndarray,
    times_ns: np.ndarray,
    values: np.ndarray,
    quality: np.ndarray,
    n_meters: int,
    edges_ns: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Place raw points into a meters × intervals grid, keeping the latest point per cell.

    ``meter_index`` (int), ``times_ns`` (int64), ``values`` (float64, NaN = no value) and
    ``quality`` (uint8 codes) are parallel arrays in any order. Points without a value are
    ignored. Returns (values, quality) of shape (n_meters, len(edges_ns) − 1).
    """
    n_intervals = len(edges_ns) - 1
    out_values = np.full((n_meters, n_intervals), np.nan)
    out_quality = np.zeros((n_meters, n_intervals), dtype=np.uint8)
    keep = (~np.isnan(values)) & (times_ns >= edges_ns[0]) & (times_ns < edges_ns[-1])
    if not keep.any():
        return out_values, out_quality
    mi, t, v, q = meter_index[keep], times_ns[keep], values[keep], quality[keep]
    cell = mi.astype(np.int64) * n_intervals + (np.searchsorted(edges_ns, t, "right") - 1)
    order = np.lexsort((t, cell))
    cell, v, q = cell[order], v[order], q[order]
    last = np.flatnonzero(np.append(cell[1:] != cell[:-1], True))
    out_values.flat[cell[last]] = v[last]
    out_quality.flat[cell[last]] = q[last]
    return out_values, out_quality


def consumption_from_registers(registers: RegisterMatrix) -> ConsumptionMatrix:
    """Differences of consecutive interval-end registers (see ConsumptionMatrix)."""
    usage = np.diff(registers.values, axis=1)
    usable = registers.mask
    mask = usable[:, 1:] & usable[:, :-1] & (usage >= 0)
    return ConsumptionMatrix(registers.meters, registers.edges_ns[1:], usage, mask)


def quality_codes(names: np.ndarray | list[str]) -> np.ndarray:
    """uint8 codes of quality names (unknown names count as suspect)."""
    suspect = QUALITY_CODES["suspect"]
    return np.fromiter(
        (QUALITY_CODES.get(n, suspect) for n in names), dtype=np.uint8, count=len(names)
    )
