"""Series store in one SQLite file: the embedded default for the demo and small sites.

Points are keyed by (site, meter, quantity, time). A file of the older layout, keyed by
(meter, quantity, time) alone, is converted in place when opened (every point already
carries its site, so nothing is lost; see docs/decisions/0015-meter-ownership.md).
"""

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
from edge.wire.files import private_sqlite_file

_IN_CHUNK = 500  # meters per IN (...) list, well under SQLite's bound-parameter limit
_MAX_INSTANTS = 1000  # instants per points_at (with 500 meters: 1,501 parameters)

_TABLE = """
CREATE TABLE {name} (
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
    PRIMARY KEY (site, meter, quantity, time_ns)
) WITHOUT ROWID
"""
_KEY = ("site", "meter", "quantity", "time_ns")
#: columns added after the first release: a points table without them gets them on open
_ADDED_COLUMNS = ("source", "note", "imported_by")
_COLUMNS = (
    "meter, quantity, time_ns, value, quality, unit, site, gateway, round, flags,"
    " source, note, imported_by"
)


class SqliteSeriesStore(MatrixQueries):
    """Points keyed by (site, meter, quantity, time); a rewrite of a key replaces the point."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        private_sqlite_file(self.path)  # readings are the operator's business data
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._upgrade()

    def _upgrade(self) -> None:
        """Create the points table, or bring one of an older release up to date in place:
        add the columns it lacks (ALTER TABLE ADD COLUMN) and, if it is keyed without the
        site, copy it into a table keyed by site (one transaction). Under SQLite's write lock,
        so that two processes opening the file do not race."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                info = self._db.execute("PRAGMA table_info(points)").fetchall()
                if not info:
                    self._db.execute(_TABLE.format(name="points"))
                have = {row[1] for row in info}
                for column in _ADDED_COLUMNS:
                    if info and column not in have:
                        self._db.execute(
                            f"ALTER TABLE points ADD COLUMN {column} TEXT NOT NULL DEFAULT ''"
                        )
                key = tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5])
                if info and key != _KEY:
                    self._rekey_by_site()
                self._db.commit()
            except sqlite3.Error as exc:
                self._db.rollback()
                raise SeriesStoreError(
                    f"{self.path}: not a series file this release can open or convert"
                    f" (expected a points table with a site column): {exc}"
                ) from exc
            except BaseException:
                self._db.rollback()
                raise

    def _rekey_by_site(self) -> None:
        """Copy a points table keyed by (meter, quantity, time) into one keyed by (site,
        meter, quantity, time): lossless, since the old key is a part of the new one."""
        self._db.execute("DROP TABLE IF EXISTS points_by_site")
        self._db.execute(_TABLE.format(name="points_by_site"))
        self._db.execute(f"INSERT INTO points_by_site ({_COLUMNS}) SELECT {_COLUMNS} FROM points")
        self._db.execute("DROP TABLE points")
        self._db.execute("ALTER TABLE points_by_site RENAME TO points")

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

    def read(
        self, meter: str, quantity: str, start: datetime, end: datetime, *, site: str
    ) -> SeriesFrame:
        with self._lock:
            rows = self._db.execute(
                "SELECT time_ns, value, quality FROM points WHERE site = ? AND meter = ?"
                " AND quantity = ? AND time_ns >= ? AND time_ns < ? ORDER BY time_ns",
                (site, meter, quantity, to_ns(start), to_ns(end)),
            ).fetchall()
        return frame_from_rows(rows)

    def latest(
        self, meters: list[str], quantity: str, before_ns: int, *, site: str
    ) -> dict[str, tuple[int, float]]:
        found = {}
        with self._lock:
            for meter in meters:
                row = self._db.execute(
                    "SELECT time_ns, value FROM points WHERE site = ? AND meter = ?"
                    " AND quantity = ? AND time_ns < ? AND value IS NOT NULL"
                    " ORDER BY time_ns DESC LIMIT 1",
                    (site, meter, quantity, before_ns),
                ).fetchone()
                if row is not None:
                    found[meter] = (row[0], row[1])
        return found

    def raw_points(
        self, meters: list[str], quantity: str, start_ns: int, end_ns: int, *, site: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self._points(
            site, meters, quantity, "time_ns >= ? AND time_ns < ?", [start_ns, end_ns]
        )

    def points_at(
        self, meters: list[str], quantity: str, times_ns: list[int], *, site: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Points stamped exactly at one of ``times_ns`` (at most 1,000 instants), one
        query per chunk of meters."""
        instants = sorted(set(times_ns))
        if len(instants) > _MAX_INSTANTS:
            raise SeriesStoreError(f"points_at: {len(instants)} instants, at most {_MAX_INSTANTS}")
        return self._points(
            site, meters, quantity, f"time_ns IN ({', '.join('?' * len(instants))})", instants
        )

    def _points(
        self, site: str, meters: list[str], quantity: str, when: str, params: list[int]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(meter index, time ns, value, quality code) of the points with a value whose time
        matches ``when`` (an SQL condition on ``time_ns`` with ``params``), by meter chunks."""
        index = {m: i for i, m in enumerate(meters)}
        rows: list[tuple[str, int, float, str]] = []
        with self._lock:
            for chunk in range(0, len(meters), _IN_CHUNK):
                part = meters[chunk : chunk + _IN_CHUNK]
                rows += self._db.execute(
                    f"SELECT meter, time_ns, value, quality FROM points WHERE site = ?"
                    f" AND quantity = ? AND meter IN ({', '.join('?' * len(part))})"
                    f" AND {when} AND value IS NOT NULL",
                    (site, quantity, *part, *params),
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
