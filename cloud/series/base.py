"""The series store interface: points in, numpy arrays out.

A point is keyed by (site, meter, quantity, time); writing the same key again replaces the
point, so a redelivered envelope can be written twice without storing a reading twice. Meter
ids are unique within a site only (two sites may both have a ``MAIN``), so every read names
its site (the required keyword ``site=``) and sees that site's points only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np

from cloud.series.matrix import (
    DEFAULT_TZ,
    ConsumptionMatrix,
    RegisterMatrix,
    consumption_from_registers,
    interval_edges,
    last_per_interval,
    parse_step,
    to_ns,
)

__all__ = ["SeriesFrame", "SeriesPoint", "SeriesStore", "SeriesStoreError", "to_ns"]


class SeriesStoreError(Exception):
    """The series store refused or failed a write or a query."""


@dataclass(slots=True)
class SeriesPoint:
    """One stored reading. ``time_ns`` is the read time in UTC nanoseconds since the epoch;
    ``value`` is in the quantity's unit (kWh, m³, V ...) or None when the read failed.

    Treated as a value: code makes changed copies (``dataclasses.replace``) and never assigns
    to a field. Not ``frozen``: a frozen dataclass sets each field through
    ``object.__setattr__``, which made building one 6 × slower, and ingest builds tens of
    thousands a second (decision 0026).
    """

    site: str
    meter: str
    quantity: str
    time_ns: int
    value: float | None
    quality: str
    unit: str = ""
    gateway: str = ""
    round: str = ""
    flags: str = ""  # validation findings, comma-separated (e.g. "decrease,spike")
    source: str = ""  # "" from a gateway, "manual" from an import (meterflow cloud readings)
    note: str = ""  # free text of a manual reading (one line)
    imported_by: str = ""  # the account that imported a manual reading


@dataclass(frozen=True)
class SeriesFrame:
    """Points of one (site, meter, quantity) ordered by time.

    ``times_ns`` int64 UTC nanoseconds; ``values`` float64 (NaN where no value);
    ``quality`` object array of quality names.
    """

    times_ns: np.ndarray
    values: np.ndarray
    quality: np.ndarray

    def __len__(self) -> int:
        return len(self.times_ns)


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

    def read(
        self, meter: str, quantity: str, start: datetime, end: datetime, *, site: str
    ) -> SeriesFrame:
        """Points of one meter of ``site`` and quantity with start <= time < end, by time."""

    def latest(
        self, meters: list[str], quantity: str, before_ns: int, *, site: str
    ) -> dict[str, tuple[int, float]]:
        """Per meter, (time_ns, value) of the newest point with a value before ``before_ns``."""

    def raw_points(
        self, meters: list[str], quantity: str, start_ns: int, end_ns: int, *, site: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(meter index, time ns, value, quality code) of points with a value in
        [start_ns, end_ns)."""

    def points_at(
        self, meters: list[str], quantity: str, times_ns: list[int], *, site: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Like :meth:`raw_points`, but only the points stamped exactly at one of
        ``times_ns`` (e.g. the local midnights of a billing period)."""

    def register_matrix(
        self,
        meters: list[str],
        quantity: str,
        start: datetime,
        end: datetime,
        step: str,
        tz: str = DEFAULT_TZ,
        *,
        site: str,
    ) -> RegisterMatrix:
        """Meters × intervals of the last register value per interval (see matrix.py)."""

    def consumption_matrix(
        self,
        meters: list[str],
        quantity: str,
        start: datetime,
        end: datetime,
        step: str,
        tz: str = DEFAULT_TZ,
        *,
        site: str,
    ) -> ConsumptionMatrix:
        """Use per interval of [start, end), from interval-end registers."""

    def close(self) -> None: ...


class MatrixQueries:
    """register_matrix and consumption_matrix on top of a store's ``raw_points``; a store
    with server-side aggregation overrides ``register_matrix``."""

    def raw_points(
        self, meters: list[str], quantity: str, start_ns: int, end_ns: int, *, site: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(meter index, time ns, value, quality code) of points with a value."""
        raise NotImplementedError

    def points_at(
        self, meters: list[str], quantity: str, times_ns: list[int], *, site: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Points stamped exactly at one of ``times_ns``: one :meth:`raw_points` per
        instant here; a store overrides it with one query."""
        parts = [
            self.raw_points(meters, quantity, t, t + 1, site=site) for t in sorted(set(times_ns))
        ]
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0), np.zeros(0, dtype=np.uint8)
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))  # type: ignore[return-value]

    def register_matrix(
        self,
        meters: list[str],
        quantity: str,
        start: datetime,
        end: datetime,
        step: str,
        tz: str = DEFAULT_TZ,
        *,
        site: str,
    ) -> RegisterMatrix:
        edges = interval_edges(start, end, step, tz)
        idx, times, values, quality = self.raw_points(
            meters, quantity, int(edges[0]), int(edges[-1]), site=site
        )
        grid_v, grid_q = last_per_interval(idx, times, values, quality, len(meters), edges)
        return RegisterMatrix(tuple(meters), edges, grid_v, grid_q)

    def consumption_matrix(
        self,
        meters: list[str],
        quantity: str,
        start: datetime,
        end: datetime,
        step: str,
        tz: str = DEFAULT_TZ,
        *,
        site: str,
    ) -> ConsumptionMatrix:
        first = interval_edges(start, end, step, tz)
        before = previous_edge(start, step, tz)
        registers = self.register_matrix(meters, quantity, before, end, step, tz, site=site)
        assert np.array_equal(registers.edges_ns[1:], first)
        return consumption_from_registers(registers)


def previous_edge(start: datetime, step: str, tz: str) -> datetime:
    """The edge one step before ``start`` on the same calendar grid."""
    delta = parse_step(step)
    if delta % timedelta(days=1) == timedelta(0):
        zone = ZoneInfo(tz)
        local = start.astimezone(zone).replace(tzinfo=None) - delta
        return local.replace(tzinfo=zone).astimezone(UTC)
    return start - delta
