"""The series store interface: points in, numpy arrays out.

A point is keyed by (meter, quantity, time); writing the same key again replaces the point,
so a redelivered envelope can be written twice without storing a reading twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import numpy as np


class SeriesStoreError(Exception):
    """The series store refused or failed a write or a query."""


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One stored reading. ``time_ns`` is the read time in UTC nanoseconds since the epoch;
    ``value`` is in the quantity's unit (kWh, m³, V ...) or None when the read failed."""

    site: str
    meter: str
    quantity: str
    time_ns: int
    value: float | None
    quality: str
    unit: str = ""
    gateway: str = ""
    round: str = ""


@dataclass(frozen=True)
class SeriesFrame:
    """Points of one (meter, quantity) ordered by time.

    ``times_ns`` int64 UTC nanoseconds; ``values`` float64 (NaN where no value);
    ``quality`` object array of quality names.
    """

    times_ns: np.ndarray
    values: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.times_ns)


def to_ns(moment: datetime) -> int:
    """UTC nanoseconds of an aware datetime (microsecond resolution, exact)."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; series times are UTC")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def frame_from_rows(rows: list[tuple[int, float | None, str]]) -> SeriesFrame:
    """Build a SeriesFrame from (time_ns, value, quality) rows already ordered by time."""
    times = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    values = np.fromiter(
        (np.nan if r[1] is None else r[1] for r in rows), dtype=np.float64, count=len(rows)
    )
    quality = np.array([r[2] for r in rows], dtype=object)
    return SeriesFrame(times, values, quality)


class SeriesStore(Protocol):
    """What ingest writes to and billing reads from."""

    def write(self, points: list[SeriesPoint]) -> None:
        """Store ``points`` durably before returning (idempotent per key)."""

    def read(self, meter: str, quantity: str, start: datetime, end: datetime) -> SeriesFrame:
        """Points of one meter and quantity with start <= time < end, ordered by time."""

    def close(self) -> None: ...
