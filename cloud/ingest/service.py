"""Ingest: verify a gateway's envelope, drop duplicates, store its readings, or dead-letter it.

Order of work for one message, chosen so that a crash at any point loses nothing and stores
nothing twice: verify (signature, then the site owns every meter) → duplicate check → write
points (idempotent per site, meter, quantity, time) → record (gateway, seq) → the caller
acknowledges the message to the broker.
A crash after the write but before the record makes the broker redeliver; the rewrite
replaces the same points.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cloud.ingest.models import DeadLetter, SeenEnvelope
from cloud.ingest.ownership import MeterOwnership
from cloud.ingest.validation import SeriesState, VeeRules, is_cumulative, validate
from cloud.registry.service import EnvelopeRefused, KnownKey, find_key, open_gateway_envelope
from cloud.series.base import SeriesPoint, SeriesStore, to_ns
from edge.wire import (
    MAX_ENVELOPE_BYTES,
    ClockState,
    MalformedEnvelope,
    ReadingsPayload,
    Topics,
)


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class RejectReason(StrEnum):
    """Why a message went to the dead-letter table."""

    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    BAD_SIGNATURE = "bad_signature"
    WRONG_GATEWAY = "wrong_gateway"
    METER_NOT_OWNED = "meter_not_owned"  # a reading of a meter the gateway's site does not own


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    readings: int = 0
    reason: RejectReason | None = None
    detail: str = ""


@dataclass
class IngestStats:
    """Counters since start: envelopes by outcome, readings stored, rejections by reason."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    readings_stored: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def count(self, result: IngestResult) -> None:
        if result.outcome is Outcome.STORED:
            self.stored += 1
            self.readings_stored += result.readings
        elif result.outcome is Outcome.DUPLICATE:
            self.duplicates += 1
        else:
            self.rejected += 1
            self.reasons[str(result.reason)] += 1


class _Rejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def payload_points(site: str, payload: ReadingsPayload) -> list[SeriesPoint]:
    """The series points of a verified payload (values in their units, times in UTC ns)."""
    return [
        SeriesPoint(
            site=site,
            meter=r.meter,
            quantity=r.quantity,
            time_ns=to_ns(r.read_at),
            value=None if r.value is None else float(r.value),
            quality=r.quality.value,
            unit=r.unit,
            gateway=payload.gateway,
            round=r.round,
        )
        for r in payload.readings
    ]


@dataclass(frozen=True)
class _Accepted:
    index: int
    site: str
    payload: ReadingsPayload


@dataclass
class PreparedBatch:
    """A verified and validated batch waiting to be written."""

    results: list[IngestResult | None]
    fresh: list[_Accepted]
    points: list[SeriesPoint]
    letters: list[DeadLetter]
    received_at: datetime


class IngestService:
    """Turns raw ``up/readings`` messages into stored points; thread-safe.

    Messages are handled in batches: one store write and one ledger transaction per batch,
    which is what lets one worker keep up with many gateways. Registered keys are cached
    for ``key_cache_s`` seconds, so a revocation takes effect within that time; so are the
    sites' meters (``cloud.ingest.ownership``).
    """

    def __init__(
        self,
        registry: sessionmaker[Session],
        store: SeriesStore,
        topics: Topics | None = None,
        *,
        rules: VeeRules | None = None,
        key_cache_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.store = store
        self.topics = topics or Topics()
        self.rules = rules or VeeRules()
        self.stats = IngestStats()
        self.key_cache_s = key_cache_s
        self._clock = clock
        self._lock = threading.Lock()  # one batch prepared at a time: validation state
        self._stats_lock = threading.Lock()
        self._keys: dict[str, tuple[float, KnownKey | None]] = {}
        self.ownership = MeterOwnership(registry, cache_s=key_cache_s, clock=clock)
        self._series: dict[tuple[str, str, str], SeriesState] = {}  # (site, meter, quantity)

    def handle(self, topic: str, body: bytes) -> IngestResult:
        """Process one message; returns only when its outcome is durable."""
        return self.handle_batch([(topic, body)])[0]

    def handle_batch(self, messages: list[tuple[str, bytes]]) -> list[IngestResult]:
        """Process messages (topic, body) together; returns one result per message, in
        order, only once every outcome is durable. Raises if the store or the ledger fails;
        then nothing of the batch counts as done and the caller acknowledges nothing."""
        return self.commit(self.prepare(messages))

    def prepare(self, messages: list[tuple[str, bytes]]) -> PreparedBatch:
        """First half of a batch, CPU only: verify, drop known duplicates, validate.

        Batches must be committed in the order they were prepared. A worker may prepare the
        next batch while the previous one commits; an envelope in both is then caught when
        its (gateway, seq) is recorded.
        """
        received_at = datetime.now(UTC)
        with self._lock:
            results: list[IngestResult | None] = [None] * len(messages)
            accepted: list[_Accepted] = []
            letters = []
            for i, (topic, body) in enumerate(messages):
                try:
                    site, payload = self._verify(topic, body)
                except _Rejected as rej:
                    results[i] = IngestResult(
                        Outcome.REJECTED, reason=rej.reason, detail=rej.detail
                    )
                    letters.append(
                        DeadLetter(
                            received_at=received_at,
                            topic=topic[:300],
                            reason=rej.reason.value,
                            detail=rej.detail[:2000],
                            payload=body[:MAX_ENVELOPE_BYTES],
                        )
                    )
                    continue
                accepted.append(_Accepted(i, site, payload))
            fresh = self._drop_duplicates(accepted, results)
            points = self._validated_points(fresh, received_at)
        return PreparedBatch(results, fresh, points, letters, received_at)

    def commit(self, batch: PreparedBatch) -> list[IngestResult]:
        """Second half, I/O: write the points, record (gateway, seq), keep dead letters."""
        results = list(batch.results)
        if batch.points:
            self.store.write(batch.points)
        for item, outcome in zip(
            batch.fresh, self._record(batch.fresh, batch.received_at), strict=True
        ):
            results[item.index] = (
                IngestResult(Outcome.STORED, readings=len(item.payload.readings))
                if outcome
                else IngestResult(Outcome.DUPLICATE)
            )
        if batch.letters:
            with self.registry.begin() as session:
                session.add_all(batch.letters)
        done = [r for r in results if r is not None]
        assert len(done) == len(results)
        with self._stats_lock:
            for r in done:
                self.stats.count(r)
        return done

    def _known_key(self, kid: str) -> KnownKey | None:
        now = self._clock()
        cached = self._keys.get(kid)
        if cached is not None and now - cached[0] < self.key_cache_s:
            return cached[1]
        with self.registry() as session:
            key = find_key(session, kid)
        self._keys[kid] = (now, key)
        return key

    def _verify(self, topic: str, body: bytes) -> tuple[str, ReadingsPayload]:
        try:
            site, gateway = self.topics.parse_readings(topic)
        except MalformedEnvelope as exc:
            raise _Rejected(RejectReason.MALFORMED, str(exc)) from None
        if len(body) > MAX_ENVELOPE_BYTES:
            raise _Rejected(
                RejectReason.OVERSIZED,
                f"{len(body)} bytes; at most {MAX_ENVELOPE_BYTES} are accepted",
            )
        try:
            key, payload = open_gateway_envelope(body, ReadingsPayload, self._known_key)
        except EnvelopeRefused as exc:
            raise _Rejected(RejectReason(exc.reason), str(exc)) from None
        if payload.kid != key.kid:
            raise _Rejected(
                RejectReason.MALFORMED,
                f"payload kid {payload.kid!r} differs from header kid {key.kid!r}",
            )
        if not (payload.gateway == key.gateway_id == gateway and key.site_id == site):
            raise _Rejected(
                RejectReason.WRONG_GATEWAY,
                f"topic names {site}/{gateway}, payload gateway {payload.gateway!r}, key "
                f"{key.kid!r} belongs to {key.site_id}/{key.gateway_id}",
            )
        stray = self.ownership.not_owned(site, (r.meter for r in payload.readings))
        if stray:
            raise _Rejected(
                RejectReason.METER_NOT_OWNED,
                f"site {site} has no meter {', '.join(map(repr, stray[:10]))}"
                + (f" (and {len(stray) - 10} more)" if len(stray) > 10 else "")
                + f"; gateway {gateway} may report only its site's meters",
            )
        return site, payload

    def _drop_duplicates(
        self, accepted: list[_Accepted], results: list[IngestResult | None]
    ) -> list[_Accepted]:
        """Envelopes not seen before, in (gateway, seq) order; marks the others duplicate."""
        if not accepted:
            return []
        keys = {(a.payload.gateway, a.payload.seq) for a in accepted}
        with self.registry() as session:
            seen = {
                (gw, seq)
                for gw, seq in session.execute(
                    select(SeenEnvelope.gateway_id, SeenEnvelope.seq).where(
                        tuple_(SeenEnvelope.gateway_id, SeenEnvelope.seq).in_(sorted(keys))
                    )
                )
            }
        fresh = []
        for a in sorted(accepted, key=lambda a: (a.payload.gateway, a.payload.seq)):
            key = (a.payload.gateway, a.payload.seq)
            if key in seen:
                results[a.index] = IngestResult(Outcome.DUPLICATE)
            else:
                seen.add(key)
                fresh.append(a)
        return fresh

    def _validated_points(self, fresh: list[_Accepted], received_at: datetime) -> list[SeriesPoint]:
        per_envelope = [payload_points(a.site, a.payload) for a in fresh]
        self._load_series_state([p for pts in per_envelope for p in pts])
        received_ns = to_ns(received_at)
        points = []
        for a, pts in zip(fresh, per_envelope, strict=True):
            pts.sort(key=lambda p: p.time_ns)
            points += validate(
                pts,
                self._series,
                received_ns,
                clock_synced=a.payload.clock is ClockState.SYNCED,
                rules=self.rules,
            )
        return points

    def _load_series_state(self, points: list[SeriesPoint]) -> None:
        """Fetch the last stored value of series this worker has not seen yet."""
        missing: dict[tuple[str, str], dict[str, int]] = {}  # (site, quantity) → meter → ns
        for p in points:
            if (p.site, p.meter, p.quantity) not in self._series and is_cumulative(p.quantity):
                first = missing.setdefault((p.site, p.quantity), {})
                first[p.meter] = min(first.get(p.meter, p.time_ns), p.time_ns)
        for (site, quantity), meters in missing.items():
            before = max(meters.values())
            latest = self.store.latest(sorted(meters), quantity, before, site=site)
            for meter, (t, v) in latest.items():
                if t < meters[meter]:
                    self._series[(site, meter, quantity)] = SeriesState(t, v)

    def _record(self, fresh: list[_Accepted], received_at: datetime) -> list[bool]:
        """Record (gateway, seq) of stored envelopes; False where another worker did first."""

        def row(a: _Accepted) -> SeenEnvelope:
            return SeenEnvelope(
                gateway_id=a.payload.gateway,
                seq=a.payload.seq,
                epoch=a.payload.epoch,
                reading_count=len(a.payload.readings),
                received_at=received_at,
            )

        if not fresh:
            return []
        try:
            with self.registry.begin() as session:
                session.add_all([row(a) for a in fresh])
            return [True] * len(fresh)
        except IntegrityError:
            pass  # a concurrent worker recorded some of them: settle one by one
        outcomes = []
        for a in fresh:
            try:
                with self.registry.begin() as session:
                    session.add(row(a))
                outcomes.append(True)
            except IntegrityError:
                outcomes.append(False)
        return outcomes
