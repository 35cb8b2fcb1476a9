"""Bounded duplicate filter: per (gateway, key) a floor and a few ranges of seen seqs.

A gateway's seqs rise by one per envelope and are never reset under one key (a re-provisioned
gateway has a new key and starts again at 0: a new stream). Live envelopes arrive in rising
seq order; after an outage the backlog drains oldest first beside them. So the seqs seen of
one stream are "everything below ``floor``" plus a few ranges above it, one per outage whose
backlog has not drained yet (decision 0014):

- a seq below ``floor`` or inside a range is a duplicate; any other is new and is added,
  merging with its neighbours; a range that reaches the floor raises the floor;
- a hole (the seqs between the floor or a range and the next range) is closed (the floor is
  raised over it) when the range above it was started more than ``max_age_s`` ago: every
  envelope in the hole was sealed before that, so its readings are older than the ingest's
  time window and would be refused as ``too_old`` anyway; or when a stream holds more than
  ``max_ranges`` ranges (the oldest hole first; logged, and counted in ``closed``).

Holes come from a gateway's outages (one each, until its backlog drains) and from envelopes
in flight between the broker and the workers: with a shared subscription, consecutive seqs go
to different workers, and a worker killed with N messages unacknowledged leaves up to N holes
until they are redelivered. So ``max_ranges`` (2048) must exceed the broker's
``max_inflight_messages`` (200 in deploy/mosquitto) times the number of workers, plus the
outages of one window. State per stream: one row of at most 2048 ranges of three integers
(at most about 70 KB of JSON; a few bytes when nothing is missing), whatever the number of
envelopes. Two workers settle races optimistically:
each update of a stream row names the ``version`` it read; an update that finds another
version (or an insert that finds the row) is retried on the fresh state.
"""

from __future__ import annotations

import bisect
import json
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cloud.ingest.models import IngestStream

log = logging.getLogger(__name__)

DEFAULT_MAX_RANGES = 2048
DEFAULT_MAX_AGE_S = 33 * 86_400.0  # the time window's 32 days plus its 6 h ahead, rounded up
_MAX_TRIES = 100

StreamKey = tuple[str, str]  # (gateway id, key id)


@dataclass
class StreamState:
    """Seen seqs of one stream: all below ``floor`` and those in ``ranges`` — sorted, disjoint,
    non-adjacent [first, last, started (UNIX s)] lists, each first > floor. ``closed`` counts
    seqs given up when holes were closed."""

    floor: int = 0
    ranges: list[list[int]] = field(default_factory=list)
    closed: int = 0

    def seen(self, seq: int) -> bool:
        if seq < self.floor:
            return True
        i = bisect.bisect_right(self.ranges, seq, key=lambda r: r[0]) - 1
        return i >= 0 and self.ranges[i][1] >= seq

    def add(self, seq: int, now_s: int) -> bool:
        """Record ``seq``; False if it was seen already."""
        if self.seen(seq):
            return False
        rs = self.ranges
        i = bisect.bisect_right(rs, seq, key=lambda r: r[0])  # rs[i-1].first < seq < rs[i].first
        joins_left = i > 0 and rs[i - 1][1] == seq - 1
        joins_right = i < len(rs) and rs[i][0] == seq + 1
        if joins_left and joins_right:
            rs[i - 1][1] = rs[i][1]
            rs[i - 1][2] = min(rs[i - 1][2], rs[i][2])
            del rs[i]
        elif joins_left:
            rs[i - 1][1] = seq
        elif joins_right:
            rs[i][0] = seq
        else:
            rs.insert(i, [seq, seq, now_s])
        self._settle()
        return True

    def _settle(self) -> None:
        while self.ranges and self.ranges[0][0] == self.floor:
            self.floor = self.ranges.pop(0)[1] + 1

    def prune(self, now_s: int, max_age_s: float, max_ranges: int) -> None:
        """Close the lowest holes that are too old, or too many."""
        while self.ranges and (
            self.ranges[0][2] < now_s - max_age_s or len(self.ranges) > max_ranges
        ):
            first, last, _ = self.ranges.pop(0)
            log.warning(
                "duplicate filter: seqs %d..%d given up (not received; too old or too many holes)",
                self.floor,
                first - 1,
            )
            self.closed += first - self.floor
            self.floor = last + 1
            self._settle()

    def to_json(self) -> str:
        return json.dumps(self.ranges, separators=(",", ":"))

    @classmethod
    def of(cls, row: IngestStream | None) -> StreamState:
        if row is None:
            return cls()
        return cls(row.floor, json.loads(row.ranges), row.closed)


class Deduper:
    """The duplicate filter in the registry (table ``ingest_streams``)."""

    def __init__(
        self,
        registry: sessionmaker[Session],
        *,
        max_ranges: int = DEFAULT_MAX_RANGES,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.registry = registry
        self.max_ranges = max_ranges
        self.max_age_s = max_age_s

    def _load(self, session: Session, keys: set[StreamKey]) -> dict[StreamKey, IngestStream]:
        rows = session.scalars(
            select(IngestStream).where(
                tuple_(IngestStream.gateway_id, IngestStream.kid).in_(sorted(keys))
            )
        )
        return {(r.gateway_id, r.kid): r for r in rows}

    def known(self, items: list[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
        """Those (gateway, kid, seq) already recorded (read only; a hint before writing)."""
        if not items:
            return set()
        with self.registry() as session:
            rows = self._load(session, {(g, k) for g, k, _ in items})
        states = {key: StreamState.of(row) for key, row in rows.items()}
        return {(g, k, s) for g, k, s in items if (g, k) in states and states[(g, k)].seen(s)}

    def record(self, items: list[tuple[str, str, int]], received_at: datetime) -> list[bool]:
        """Record each (gateway, kid, seq); per item True if it was new, False if it had
        been recorded before (by this call's earlier items or by anyone else)."""
        if not items:
            return []
        now_s = int(received_at.timestamp())
        by_stream: dict[StreamKey, list[int]] = defaultdict(list)
        for g, k, s in items:
            by_stream[(g, k)].append(s)
        for attempt in range(_MAX_TRIES):
            try:
                fresh = self._record_once(by_stream, now_s, received_at)
            except (IntegrityError, _Conflict):
                # Another worker changed one of the streams: again on fresh state, after a
                # short random pause so that two workers do not collide in step.
                time.sleep(random.uniform(0, min(0.001 * 2**attempt, 0.05)))
                continue
            return self._mark(items, fresh)
        raise FilterContention(f"duplicate filter: {_MAX_TRIES} conflicting updates in a row")

    @staticmethod
    def _mark(items: list[tuple[str, str, int]], fresh: set[tuple[str, str, int]]) -> list[bool]:
        out = []
        for item in items:
            out.append(item in fresh)
            fresh.discard(item)  # a second copy in the same call is a duplicate
        return out

    def _record_once(
        self, by_stream: dict[StreamKey, list[int]], now_s: int, received_at: datetime
    ) -> set[tuple[str, str, int]]:
        fresh = set()
        with self.registry.begin() as session:
            rows = self._load(session, set(by_stream))
            for key in sorted(by_stream):
                row = rows.get(key)
                state = StreamState.of(row)
                for seq in sorted(set(by_stream[key])):
                    if state.add(seq, now_s):
                        fresh.add((key[0], key[1], seq))
                state.prune(now_s, self.max_age_s, self.max_ranges)
                values = {
                    "floor": state.floor,
                    "ranges": state.to_json(),
                    "closed": state.closed,
                    "updated_at": received_at,
                }
                if row is None:
                    session.add(IngestStream(gateway_id=key[0], kid=key[1], version=1, **values))
                    continue
                done = session.execute(
                    update(IngestStream)
                    .where(
                        IngestStream.gateway_id == key[0],
                        IngestStream.kid == key[1],
                        IngestStream.version == row.version,
                    )
                    .values(version=row.version + 1, **values)
                    .execution_options(synchronize_session=False)
                )
                if done.rowcount != 1:
                    raise _Conflict
            session.flush()
        return fresh


class FilterContention(Exception):
    """Other workers kept changing the same streams: try the batch again later (an outage,
    not the data's fault)."""


class _Conflict(Exception):
    """A stream row changed between reading and writing it."""
