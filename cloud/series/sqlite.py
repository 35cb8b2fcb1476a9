"""Series store in one SQLite file: the embedded default for the demo and small sites."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from cloud.series.base import SeriesFrame, SeriesPoint, SeriesStoreError, frame_from_rows, to_ns

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
    PRIMARY KEY (meter, quantity, time_ns)
) WITHOUT ROWID
"""


class SqliteSeriesStore:
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

    def write(self, points: list[SeriesPoint]) -> None:
        rows = [
            (p.meter, p.quantity, p.time_ns, p.value, p.quality, p.unit, p.site, p.gateway, p.round)
            for p in points
        ]
        try:
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
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

    def close(self) -> None:
        with self._lock:
            self._db.close()
