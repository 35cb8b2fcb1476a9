"""The gateway's durable outbox: readings in, sealed envelopes out, deleted on PUBACK.

One SQLite file in WAL mode. A reading is committed here before anything is published.
Sealing takes the oldest pending readings, allocates the next ``seq`` and stores the signed
envelope in the same transaction, so a seq is persisted before its envelope is ever sent and
a republished envelope (after a reconnect or a restart) is byte-for-byte the same one. The
envelope row is deleted only when the broker acknowledges it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.wire import Reading

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS envelopes (
    seq INTEGER PRIMARY KEY,
    body BLOB NOT NULL,
    readings INTEGER NOT NULL,
    created_at REAL NOT NULL
);
"""

_WAL_PAGES = 64
_WAL_ALLOWANCE = 320 * 1024  # bytes: the log between checkpoints plus one transaction
_FILE_OVERHEAD = 1.15  # database file bytes per byte of row content (pages, b-trees)

#: seal(seq, epoch, readings) -> signed envelope bytes
Sealer = Callable[[int, int, list[Reading]], bytes]


@dataclass(frozen=True)
class SealedEnvelope:
    seq: int
    body: bytes
    readings: int


@dataclass(frozen=True)
class OutboxDepth:
    """What waits in the outbox: readings not yet sealed, envelopes not yet acknowledged,
    the age in seconds of the oldest item (0 when empty), the disk it takes (bytes, file
    and write-ahead log), and how much was evicted since the outbox was made."""

    pending_readings: int
    unacked_envelopes: int
    oldest_age_s: float
    disk_bytes: int = 0
    evicted_readings: int = 0
    evicted_envelopes: int = 0


@dataclass(frozen=True)
class Eviction:
    """What one enforcement of the bounds removed (oldest first)."""

    envelopes: int = 0
    readings: int = 0


class OutboxStore:
    """Durable store-and-forward queue; safe to share between the poller and MQTT threads."""

    def __init__(self, path: Path | str, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._now = wall_clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        # Incremental auto-vacuum lets eviction give pages back to the file system (it only
        # takes effect when set before the first table exists).
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        # Checkpoint the write-ahead log every 64 pages (256 KiB), so the log never takes
        # more than a small, known share of the outbox's disk bound.
        self._db.execute(f"PRAGMA wal_autocheckpoint={_WAL_PAGES}")
        self._db.execute(f"PRAGMA journal_size_limit={_WAL_ALLOWANCE}")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO meta VALUES ('next_seq', 0), ('epoch', 0), "
            "('evicted_readings', 0), ('evicted_envelopes', 0)"
        )

    def _meta(self, key: str) -> int:
        return self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

    def start_epoch(self) -> int:
        """Count one more boot and return the new epoch number."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                epoch = self._meta("epoch") + 1
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (epoch,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return epoch

    def add(self, readings: list[Reading]) -> None:
        """Commit readings to disk; returns only once they are durable."""
        now = self._now()
        rows = [(r.model_dump_json(), now) for r in readings]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO pending (body, created_at) VALUES (?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def seal_next(self, seal: Sealer, epoch: int, max_readings: int) -> SealedEnvelope | None:
        """Seal up to ``max_readings`` of the oldest pending readings into the next envelope.

        Returns None when nothing is pending. The seq, the envelope and the removal of its
        readings from ``pending`` commit together.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT id, body FROM pending ORDER BY id LIMIT ?", (max_readings,)
                ).fetchall()
                if not rows:
                    self._db.execute("ROLLBACK")
                    return None
                seq = self._meta("next_seq")
                readings = [Reading.model_validate_json(body) for _, body in rows]
                body = seal(seq, epoch, readings)
                self._db.execute(
                    "INSERT INTO envelopes VALUES (?, ?, ?, ?)", (seq, body, len(rows), self._now())
                )
                self._db.execute("DELETE FROM pending WHERE id <= ?", (rows[-1][0],))
                self._db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return SealedEnvelope(seq, body, len(rows))

    def unacked(self, after_seq: int = -1, limit: int = 1000) -> list[SealedEnvelope]:
        """Envelopes still waiting for PUBACK, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, body, readings FROM envelopes WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [SealedEnvelope(seq, bytes(body), n) for seq, body, n in rows]

    def acknowledge(self, seq: int) -> None:
        """The broker has the envelope: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM envelopes WHERE seq = ?", (seq,))

    def depth(self) -> OutboxDepth:
        with self._lock:
            pending, p_oldest = self._db.execute(
                "SELECT count(*), min(created_at) FROM pending"
            ).fetchone()
            unacked, e_oldest = self._db.execute(
                "SELECT count(*), min(created_at) FROM envelopes"
            ).fetchone()
            evicted_r, evicted_e = self._meta("evicted_readings"), self._meta("evicted_envelopes")
        oldest = min((t for t in (p_oldest, e_oldest) if t is not None), default=None)
        return OutboxDepth(
            pending,
            unacked,
            0.0 if oldest is None else self._now() - oldest,
            self.disk_bytes(),
            evicted_r,
            evicted_e,
        )

    def disk_bytes(self) -> int:
        """Bytes the outbox takes on disk: database file plus write-ahead log."""
        return sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(self.path.name + "-wal"))
            if p.exists()
        )

    def enforce(self, max_bytes: int, max_age_s: float) -> Eviction:
        """Evict the oldest envelopes, then the oldest pending readings, until nothing is
        older than ``max_age_s`` and the outbox takes at most ``max_bytes`` on disk.

        Eviction loses data, so every removed reading is counted in the outbox itself and
        reported; the caller raises the alarm. Row content is kept small enough that the
        file's own overhead and the write-ahead log fit in the rest of the bound.
        """
        envelopes = readings = 0
        cutoff = self._now() - max_age_s
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n, r = self._db.execute(
                    "SELECT count(*), coalesce(sum(readings), 0) FROM envelopes"
                    " WHERE created_at < ?",
                    (cutoff,),
                ).fetchone()
                self._db.execute("DELETE FROM envelopes WHERE created_at < ?", (cutoff,))
                envelopes, readings = envelopes + n, readings + r
                readings += self._db.execute(
                    "DELETE FROM pending WHERE created_at < ?", (cutoff,)
                ).rowcount
                budget = max(int((max_bytes - _WAL_ALLOWANCE) / _FILE_OVERHEAD), 0)
                content = self._content_bytes()
                while content > budget:
                    row = self._db.execute(
                        "SELECT seq, readings, length(body) FROM envelopes ORDER BY seq LIMIT 1"
                    ).fetchone()
                    if row is not None:
                        self._db.execute("DELETE FROM envelopes WHERE seq = ?", (row[0],))
                        envelopes, readings, content = (
                            envelopes + 1,
                            readings + row[1],
                            content - row[2] - 64,
                        )
                        continue
                    gone = self._db.execute(
                        "DELETE FROM pending WHERE id IN (SELECT id FROM pending ORDER BY id"
                        " LIMIT 100)"
                    ).rowcount
                    if not gone:
                        break
                    readings += gone
                    content = self._content_bytes()
                self._db.execute(
                    "UPDATE meta SET value = value + ? WHERE key = 'evicted_envelopes'",
                    (envelopes,),
                )
                self._db.execute(
                    "UPDATE meta SET value = value + ? WHERE key = 'evicted_readings'", (readings,)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if envelopes or readings:
                self._db.execute("PRAGMA incremental_vacuum")
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return Eviction(envelopes, readings)

    def _content_bytes(self) -> int:
        """Approximate bytes of stored rows (bodies plus a fixed overhead per row)."""
        env = self._db.execute(
            "SELECT coalesce(sum(length(body)), 0) + 64 * count(*) FROM envelopes"
        ).fetchone()[0]
        pend = self._db.execute(
            "SELECT coalesce(sum(length(body)), 0) + 32 * count(*) FROM pending"
        ).fetchone()[0]
        return env + pend

    def close(self) -> None:
        with self._lock:
            self._db.close()
