"""Series store in one SQLite file: the embedded default for the demo and small sites."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path

import numpy as np

from cloud.series.base import (
    MatrixQueries,
    SeriesFrame,
    SeriesPoint,
    SeriesStoreError,
    frame_from_rows,
    to_ns,
)
from cloud.series.matrix import quality_codes

_IN_CHUNK = 500  # meters per IN (...) list, well under SQLite's bound-parameter limit
_MAX_INSTANTS = 1000  # instants per points_at (with 500 meters: 1,501 parameters)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    meter    TEXT NOT NULL,
    quantity TEXT NOT NULL,
    time_ns  INTEGER NOT NULL,
    value    REAL,
    quality  TEXT NOT NULL,
    unit     TEXT NOT NULL,
    site     TEXT NOT NULL,
    gateway  TEXT NOT NULL,
    round    TEXT NOT NULL,
    flags    TEXT NOT NULL DEFAULT '',
    source   TEXT NOT NULL DEFAULT '',
    note     TEXT NOT NULL DEFAULT '',
    imported_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (meter, quantity, time_ns)
) WITHOUT ROWID
"""
#: columns added after the first release: a points table without them gets them on open
_ADDED_COLUMNS = ("source", "note", "imported_by")
_COLUMNS = (
    "meter, quantity, time_ns, value, quality, unit, site, gateway, round, flags,"
    " source, note, imported_by"
)


class SqliteSeriesStore(MatrixQueries):
    """Points keyed by (meter, quantity, time); a rewrite of a key replaces the point."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._db.commit()
        self._upgrade()

    def _upgrade(self) -> None:
        """Add the columns a points table of an older release lacks (ALTER TABLE ADD COLUMN,
        in place), under the write lock so that two processes opening it do not race."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                have = {row[1] for row in self._db.execute("PRAGMA table_info(points)")}
                for column in _ADDED_COLUMNS:
                    if column not in have:
                        self._db.execute(
                            f"ALTER TABLE points ADD COLUMN {column} TEXT NOT NULL DEFAULT ''"
                        )
                self._db.commit()
            except BaseException:
                self._db.rollback()
                raise

    def write(self, points: list[SeriesPoint]) -> None:
        rows = [
            (
                p.meter,
                p.quantity,
                p.time_ns,
                p.value,
                p.quality,
                p.unit,
                p.site,
                p.gateway,
                p.round,
                p.flags,
                p.source,
                p.note,
                p.imported_by,
            )
            for p in points
        ]
        try:
            with self._lock, self._db:
                self._db.executemany(
                    f"INSERT OR REPLACE INTO points ({_COLUMNS}) VALUES ({', '.join('?' * 13)})",
                    rows,
                )
        except sqlite3.Error as exc:
            raise SeriesStoreError(
                f"{self.path}: write of {len(rows)} points failed: {exc}"
            ) from exc

    def read(self, meter: str, quantity: str, start: datetime, end: datetime) -> SeriesFrame:
        with self._lock:
            rows = self._db.execute(
                "SELECT time_ns, value, quality FROM points"
                " WHERE meter = ? AND quantity = ? AND time_ns >= ? AND time_ns < ?"
                " ORDER BY time_ns",
                (meter, quantity, to_ns(start), to_ns(end)),
            ).fetchall()
        return frame_from_rows(rows)

    def latest(
        self, meters: list[str], quantity: str, before_ns: int
    ) -> dict[str, tuple[int, float]]:
        found = {}
        with self._lock:
            for meter in meters:
                row = self._db.execute(
                    "SELECT time_ns, value FROM points WHERE meter = ? AND quantity = ?"
                    " AND time_ns < ? AND value IS NOT NULL ORDER BY time_ns DESC LIMIT 1",
                    (meter, quantity, before_ns),
                ).fetchone()
                if row is not None:
                    found[meter] = (row[0], row[1])
        return found

    def raw_points(
        self, meters: list[str], quantity: str, start_ns: int, end_ns: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self._points(meters, quantity, "time_ns >= ? AND time_ns < ?", [start_ns, end_ns])

    def points_at(
        self, meters: list[str], quantity: str, times_ns: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Points stamped exactly at one of ``times_ns`` (at most 1,000 instants), one
        query per chunk of meters."""
        instants = sorted(set(times_ns))
        if len(instants) > _MAX_INSTANTS:
            raise SeriesStoreError(f"points_at: {len(instants)} instants, at most {_MAX_INSTANTS}")
        return self._points(
            meters, quantity, f"time_ns IN ({', '.join('?' * len(instants))})", instants
        )

    def _points(
        self, meters: list[str], quantity: str, when: str, params: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(meter index, time ns, value, quality code) of the points with a value whose time
        matches ``when`` (an SQL condition on ``time_ns`` with ``params``), by meter chunks."""
        index = {m: i for i, m in enumerate(meters)}
        rows: list[tuple[str, int, float, str]] = []
        with self._lock:
            for chunk in range(0, len(meters), _IN_CHUNK):
                part = meters[chunk : chunk + _IN_CHUNK]
                rows += self._db.execute(
                    f"SELECT meter, time_ns, value, quality FROM points WHERE quantity = ?"
                    f" AND meter IN ({', '.join('?' * len(part))})"
                    f" AND {when} AND value IS NOT NULL",
                    (quantity, *part, *params),
                ).fetchall()
        return (
            np.fromiter((index[r[0]] for r in rows), dtype=np.int64, count=len(rows)),
            np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)),
            np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows)),
            quality_codes([r[3] for r in rows]),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
