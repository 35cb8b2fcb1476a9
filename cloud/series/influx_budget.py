"""How the InfluxDB store cuts a read into chunks of meters and how long each may take.

A read of many meters is sent as several queries, each over a bounded number of meters
chosen so that its expected size stays bounded; each query gets a deadline computed from
that size. A query that misses its deadline is never sent again (see ``InfluxSeriesStore``):
re-sending a query that was too big for its deadline only loads the server once more.

Sizes are in points: a point *returned* (serialised to JSON by the server and parsed here)
costs 1; a point the server only *scans* (reads from disk to compute ``last()`` per
interval, without returning it) costs ``scan_weight``. Times are in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

#: meter ids made only of these characters go into one anchored regex alternation; any other
#: id (spaces, quotes, slashes, non-ASCII ...) is matched with ``meter = '...'`` instead
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:\-]+")


@dataclass(frozen=True)
class QueryBudget:
    """Chunk sizes and deadlines of the InfluxDB store's reads.

    ``reading_interval_s``: expected seconds between two points of one meter (900 = a
    reading every 15 minutes); it turns a time window into expected points per meter.
    ``chunk_points``: bound on a chunk's expected cost, in points (see module docstring).
    ``chunk_meters``: bound on the meters of one query, whatever the window.
    A chunk's deadline is ``base_s + per_point_s × cost``, at most ``max_s`` seconds, and
    covers connecting, the server's work and reading the whole answer. The defaults allow a
    full chunk 12 s: raw points came back at about 13 µs each (fetched and parsed) on a busy
    2-core machine with influxd 1.6, and bench/ingest_throughput.py's matrix query at about
    57 µs per returned bucket, scanning included.
    ``connect_timeout_s`` bounds one connection attempt; a connection that could not be made
    (refused, or timed out before the query was sent) is tried again up to
    ``connect_retries`` times. Nothing else is ever re-sent by a read.
    """

    reading_interval_s: float = 900.0
    chunk_points: int = 100_000
    chunk_meters: int = 500
    scan_weight: float = 0.1
    base_s: float = 2.0
    per_point_s: float = 100e-6
    max_s: float = 60.0
    connect_timeout_s: float = 5.0
    connect_retries: int = 2

    def __post_init__(self) -> None:
        if min(self.reading_interval_s, self.base_s, self.max_s, self.connect_timeout_s) <= 0:
            raise ValueError(
                "reading_interval_s, base_s, max_s and connect_timeout_s > 0 expected; got "
                f"{self.reading_interval_s}, {self.base_s}, {self.max_s}, {self.connect_timeout_s}"
            )
        if self.chunk_points < 1 or self.chunk_meters < 1 or self.connect_retries < 0:
            raise ValueError(
                "chunk_points >= 1, chunk_meters >= 1, connect_retries >= 0 expected; got "
                f"{self.chunk_points}, {self.chunk_meters}, {self.connect_retries}"
            )

    def points_per_meter(self, start_ns: int, end_ns: int) -> float:
        """Expected points of one meter in [start_ns, end_ns), at least 1."""
        return max(1.0, (end_ns - start_ns) / 1e9 / self.reading_interval_s)

    def deadline_s(self, cost: float) -> float:
        """Seconds allowed to a query of ``cost`` points."""
        return min(self.max_s, self.base_s + self.per_point_s * cost)

    def chunks(self, meters: list[str], cost_per_meter: float) -> Iterator[Chunk]:
        """``meters`` (duplicates dropped, order kept) cut into chunks of at most
        ``chunk_meters`` meters and, as far as one meter allows, ``chunk_points`` points."""
        unique = list(dict.fromkeys(meters))
        per = max(1, min(self.chunk_meters, int(self.chunk_points // max(cost_per_meter, 1e-9))))
        count = (len(unique) + per - 1) // per
        for n, first in enumerate(range(0, len(unique), per)):
            part = unique[first : first + per]
            cost = cost_per_meter * len(part)
            yield Chunk(part, n + 1, count, len(unique), cost, self.deadline_s(cost))


@dataclass(frozen=True)
class Chunk:
    """One query's meters: chunk ``number`` of ``count`` over ``total`` meters, expected
    ``cost`` in points and ``deadline_s`` in seconds."""

    meters: list[str]
    number: int
    count: int
    total: int
    cost: float
    deadline_s: float

    def describe(self, quantity: str, start_ns: int | None, end_ns: int) -> str:
        """Which meters, quantity and window this chunk asked for (for error messages)."""
        first, last = self.meters[0], self.meters[-1]
        span = first if first == last else f"{first}…{last}"
        since = "the beginning" if start_ns is None else iso(start_ns)
        return (
            f"meters {span} ({len(self.meters)} of {self.total}, chunk {self.number}/"
            f"{self.count}), {quantity}, [{since}, {iso(end_ns)})"
        )


def iso(time_ns: int) -> str:
    """UTC nanoseconds as an ISO 8601 time (to the second, with Z)."""
    return datetime.fromtimestamp(time_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meter_filter(meters: list[str], quote: Callable[[str], str]) -> str:
    """`` AND (...)`` selecting exactly ``meters``: plain ids in one anchored regex
    (``meter =~ /^(a|b|c)$/``, the fastest form measured on influxd 1.6 for hundreds of
    meters), other ids as ``meter = '...'`` terms; ``quote`` makes an InfluxQL string."""
    plain = [m for m in meters if _PLAIN_ID.fullmatch(m)]
    others = [m for m in meters if not _PLAIN_ID.fullmatch(m)]
    terms = []
    if plain:
        alternation = "|".join(m.replace(".", "\\.").replace("-", "\\-") for m in plain)
        terms.append(f"meter =~ /^({alternation})$/")
    terms += [f"meter = {quote(m)}" for m in others]
    return " AND (" + " OR ".join(terms) + ")"
