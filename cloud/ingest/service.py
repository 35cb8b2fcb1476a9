"""Ingest: verify a gateway's envelope, drop duplicates, store its readings, or dead-letter it.

Order of work for one message, chosen so that a crash at any point loses nothing and stores
nothing twice: verify (signature, then the site owns every meter) → bounds
(cloud.ingest.bounds) → duplicate check → write points (idempotent per site, meter,
quantity, time) → record (gateway, kid, seq) in the bounded duplicate filter
(cloud.ingest.dedupe) → the caller acknowledges the message to the broker.
A crash after the write but before the record makes the broker redeliver; the rewrite
replaces the same points.

One message cannot stop ingest (decision 0013): when a batch fails to be written, the store
and the registry are probed with a trivial known-good query. If the probe fails, it is an
outage: :class:`StoreUnavailable` is raised and the worker retries with backoff, without
acknowledging. If the probe succeeds, the failure is the data's: the batch is split in
halves until the message at fault is alone; it is tried once more, then dead-lettered
(``store_refused``) and acknowledged with the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cloud.ingest.bounds import TimeWindow, check_payload
from cloud.ingest.dedupe import Deduper
from cloud.ingest.letters import (
    Kept,
    LetterQuota,
    duplicate_letter,
    keep_letters,
    make_letter,
    purge_letters,
)
from cloud.ingest.models import DeadLetter, IngestStream
from cloud.ingest.outcomes import (
    IngestResult,
    IngestStats,
    Outcome,
    RejectReason,
    StoreUnavailable,
    is_outage,
)
from cloud.ingest.ownership import MeterOwnership
from cloud.ingest.points import payload_points
from cloud.ingest.validation import SeriesState, VeeRules, is_cumulative, validate
from cloud.registry.service import (
    EnvelopeRefused,
    KnownKey,
    find_key,
    open_gateway_envelope,
    revocation_mark,
)
from cloud.series.base import SeriesPoint, SeriesStore, to_ns
from edge.wire import (
    MAX_ENVELOPE_BYTES,
    Clock,
    ClockState,
    MalformedEnvelope,
    ReadingsPayload,
    Topics,
    utc_now,
)

log = logging.getLogger(__name__)
_KID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class _Rejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Accepted:
    index: int
    site: str
    payload: ReadingsPayload
    points: list[SeriesPoint]  # the payload's readings, in order
    topic: str
    body: bytes


@dataclass
class PreparedBatch:
    """A verified and validated batch waiting to be written: per message its result when
    already known (refused, duplicate), the fresh envelopes with their points (same order),
    and the dead letters to keep."""

    results: list[IngestResult | None]
    fresh: list[_Accepted]
    points_of: list[list[SeriesPoint]]
    letters: list[DeadLetter]
    received_at: datetime

    @property
    def points(self) -> list[SeriesPoint]:
        return [p for pts in self.points_of for p in pts]


class IngestService:
    """Turns raw ``up/readings`` messages into stored points; thread-safe.

    Messages are handled in batches: one store write and one ledger transaction per batch,
    which is what lets one worker keep up with many gateways. Registered keys are cached
    for ``key_cache_s`` seconds, and forgotten before a batch when a revocation was recorded
    since the last one (one small query per batch), so a revoked key is refused from the
    next batch on (decision 0043); the sites' meters are cached too
    (``cloud.ingest.ownership``). ``now`` is the receipt clock (UTC) of the time window.
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
        now: Clock = utc_now,
        window: TimeWindow | None = None,
        quota: LetterQuota | None = None,
        dedupe: Deduper | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.topics = topics or Topics()
        self.rules = rules or VeeRules()
        self.window = window or TimeWindow()
        self.quota = quota or LetterQuota()
        self.dedupe = dedupe or Deduper(
            registry, max_age_s=(self.window.max_age + self.window.max_ahead).total_seconds()
        )
        self.stats = IngestStats()
        self.key_cache_s = key_cache_s
        self._clock = clock
        self._now = now
        self._lock = threading.Lock()  # one batch prepared at a time: validation state
        self._stats_lock = threading.Lock()
        self._keys: dict[str, tuple[float, KnownKey | None]] = {}
        self._revocations: tuple[int, int] | None = None  # revocation_mark of the cache
        self.ownership = MeterOwnership(registry, cache_s=key_cache_s, clock=clock)
        self._series: dict[tuple[str, str, str], SeriesState] = {}  # (site, meter, quantity)

    def handle(self, topic: str, body: bytes) -> IngestResult:
        """Process one message; returns only when its outcome is durable."""
        return self.handle_batch([(topic, body)])[0]

    def handle_batch(self, messages: list[tuple[str, bytes]]) -> list[IngestResult]:
        """Process messages (topic, body) together; returns one result per message, in
        order, only once every outcome is durable. A message whose data the store refuses is
        dead-lettered; raises StoreUnavailable on an outage (then nothing of the batch
        counts as done and the caller acknowledges nothing)."""
        return self.commit_isolating(self.prepare(messages))

    # -- preparing: CPU, reads only ------------------------------------------------------

    def prepare(self, messages: list[tuple[str, bytes]]) -> PreparedBatch:
        """First half of a batch, CPU only: verify, check bounds, drop known duplicates,
        validate. Raises StoreUnavailable when the registry or the store does not answer.

        Batches must be committed in the order they were prepared. A worker may prepare the
        next batch while the previous one commits; an envelope in both is then caught when
        its (gateway, kid, seq) is recorded.
        """
        received_at = self._now()
        with self._lock:
            return self._prepare_isolating(messages, received_at)

    def _prepare_isolating(
        self, messages: list[tuple[str, bytes]], received_at: datetime
    ) -> PreparedBatch:
        try:
            return self._prepare(messages, received_at)
        except Exception as exc:
            self._outage_check(exc)
            if len(messages) == 1:  # a read failed for this message's data: dead-letter it
                if is_outage(exc):
                    raise StoreUnavailable(f"read failed: {error_line(exc)}") from exc
                (topic, body), reason = messages[0], RejectReason.STORE_REFUSED
                detail = f"the store refused this envelope's data: {error_line(exc)}"
                return PreparedBatch(
                    [IngestResult(Outcome.REJECTED, reason=reason, detail=detail)],
                    [],
                    [],
                    [make_letter(self.topics, topic, reason.value, detail, body, received_at)],
                    received_at,
                )
        self._count_isolation()  # a read failed while the stores answer: halves
        half = len(messages) // 2
        first = self._prepare_isolating(messages[:half], received_at)
        return _joined(first, self._prepare_isolating(messages[half:], received_at), half)

    def refuse_all(self, messages: list[tuple[str, bytes]], detail: str) -> PreparedBatch:
        """A batch that dead-letters every message as ``store_failed`` (the worker could not
        prepare them within its attempts); commit it like any other."""
        received_at, reason = self._now(), RejectReason.STORE_FAILED
        return PreparedBatch(
            [IngestResult(Outcome.REJECTED, reason=reason, detail=detail)] * len(messages),
            [],
            [],
            [
                make_letter(self.topics, t, reason.value, detail, b, received_at)
                for t, b in messages
            ],
            received_at,
        )

    def _prepare(self, messages: list[tuple[str, bytes]], received_at: datetime) -> PreparedBatch:
        self._forget_keys_if_revoked()
        results: list[IngestResult | None] = [None] * len(messages)
        accepted: list[_Accepted] = []
        letters = []
        for i, (topic, body) in enumerate(messages):
            try:
                site, payload = self._verify(topic, body)
                points = payload_points(site, payload)
                bad = check_payload(payload, points, received_at, self.window)
                if bad is not None:
                    raise _Rejected(RejectReason(bad.reason), bad.detail)
            except _Rejected as rej:
                results[i] = IngestResult(Outcome.REJECTED, reason=rej.reason, detail=rej.detail)
                letters.append(
                    make_letter(self.topics, topic, rej.reason.value, rej.detail, body, received_at)
                )
                continue
            accepted.append(_Accepted(i, site, payload, points, topic, body))
        fresh = self._drop_duplicates(accepted, results, letters, received_at)
        points_of = self._validated_points(fresh, received_at)
        return PreparedBatch(results, fresh, points_of, letters, received_at)

    # -- committing: I/O ------------------------------------------------------------------

    def commit(self, batch: PreparedBatch) -> list[IngestResult]:
        """Second half, I/O: write the points, record (gateway, kid, seq), keep dead
        letters. Raises whatever the store or the ledger raises (nothing then counts as
        done); :meth:`commit_isolating` is the caller that survives bad data."""
        outs = dict(
            zip(
                (a.index for a in batch.fresh),
                self._write(batch.fresh, batch.points_of, batch.received_at),
                strict=True,
            )
        )
        kept = self._keep(batch.letters + self._raced_letters(batch, outs))
        return self._finish(batch, outs, kept)

    def commit_isolating(self, batch: PreparedBatch) -> list[IngestResult]:
        """:meth:`commit`, but a failure the data causes dead-letters the message at fault
        (found by halving the batch) and commits the rest; an outage raises
        StoreUnavailable."""
        letters = list(batch.letters)
        try:
            written = self._write(batch.fresh, batch.points_of, batch.received_at)
            outs = dict(zip((a.index for a in batch.fresh), written, strict=True))
        except Exception as exc:
            self._outage_check(exc)
            outs = {}
            self._isolate(batch.fresh, batch.points_of, batch.received_at, outs, letters)
        letters += self._raced_letters(batch, outs)
        return self._finish(batch, outs, self._keep_isolating(letters))

    def give_up(self, batch: PreparedBatch, why: str) -> list[IngestResult]:
        """Dead-letter every fresh envelope of ``batch`` as ``store_failed`` (the worker's
        last attempt failed) and keep its letters; raises if the registry fails too."""
        detail = f"not stored after the worker's last attempt: {why}"
        outs: dict[int, IngestResult] = {}
        letters = list(batch.letters)
        for a in batch.fresh:
            outs[a.index] = self._dead(
                a, RejectReason.STORE_FAILED, detail, letters, batch.received_at
            )
        return self._finish(batch, outs, self._keep_isolating(letters))

    def _write(
        self, fresh: list[_Accepted], points_of: list[list[SeriesPoint]], received_at: datetime
    ) -> list[IngestResult]:
        points = [p for pts in points_of for p in pts]
        if points:
            self.store.write(points)
        recorded = self.dedupe.record(
            [(a.payload.gateway, a.payload.kid, a.payload.seq) for a in fresh], received_at
        )
        return [
            IngestResult(Outcome.STORED, readings=len(a.payload.readings))
            if new
            else IngestResult(Outcome.DUPLICATE)
            for a, new in zip(fresh, recorded, strict=True)
        ]

    def _keep(self, letters: list[DeadLetter]) -> Kept:
        if not letters:
            return Kept()
        try:
            with self.registry.begin() as session:
                return keep_letters(session, letters, self.quota)
        except IntegrityError:  # another worker kept the same message meanwhile: skip it now
            with self.registry.begin() as session:
                return keep_letters(session, letters, self.quota)

    def _finish(
        self, batch: PreparedBatch, outs: dict[int, IngestResult], kept: Kept
    ) -> list[IngestResult]:
        results = [outs.get(i, r) for i, r in enumerate(batch.results)]
        done = [r for r in results if r is not None]
        assert len(done) == len(results)
        with self._stats_lock:
            for r in done:
                self.stats.count(r)
            self.stats.letters_dropped += kept.dropped
            self.stats.payloads_dropped += kept.payloads_dropped
        return done

    def _isolate(
        self,
        fresh: list[_Accepted],
        points_of: list[list[SeriesPoint]],
        received_at: datetime,
        outs: dict[int, IngestResult],
        letters: list[DeadLetter],
    ) -> None:
        """Write ``fresh`` if possible, else halves; a lone envelope that fails twice while
        the stores answer is dead-lettered as ``store_refused``."""
        if not fresh:
            return
        tries = 2 if len(fresh) == 1 else 1
        for _ in range(tries):
            try:
                written = self._write(fresh, points_of, received_at)
                outs.update(zip((a.index for a in fresh), written, strict=True))
                return
            except Exception as failure:
                self._outage_check(failure)
                exc, why = failure, error_line(failure)
        if len(fresh) == 1:
            if is_outage(exc):  # the stores answer reads, but cannot take this write
                raise StoreUnavailable(f"write failed: {why}") from exc
            detail = f"the store refused this envelope's data: {why}"
            log.warning("ingest: %s: %s", fresh[0].topic, detail)
            outs[fresh[0].index] = self._dead(
                fresh[0], RejectReason.STORE_REFUSED, detail, letters, received_at
            )
            return
        self._count_isolation()
        half = len(fresh) // 2
        self._isolate(fresh[:half], points_of[:half], received_at, outs, letters)
        self._isolate(fresh[half:], points_of[half:], received_at, outs, letters)

    def _keep_isolating(self, letters: list[DeadLetter]) -> Kept:
        """Keep ``letters``; one the registry refuses while answering (twice) is kept without
        its payload and detail, or not at all."""
        try:
            return self._keep(letters)
        except Exception as exc:
            self._outage_check(exc)
        if len(letters) > 1:
            self._count_isolation()
            a = self._keep_isolating(letters[: len(letters) // 2])
            b = self._keep_isolating(letters[len(letters) // 2 :])
            return Kept(
                a.kept + b.kept, a.payloads_dropped + b.payloads_dropped, a.dropped + b.dropped
            )
        (letter,) = letters
        bare = DeadLetter(
            received_at=letter.received_at,
            topic="(refused)",
            reason=letter.reason,
            detail="(the registry refused this letter's text)",
            payload=b"",
            gateway_id=None,
            size=0,
        )
        try:
            return self._keep([bare])
        except Exception as exc:
            self._outage_check(exc)
            return Kept(dropped=1)

    def _raced_letters(
        self, batch: PreparedBatch, outs: dict[int, IngestResult]
    ) -> list[DeadLetter]:
        """``duplicate`` letters of fresh envelopes another worker recorded first."""
        return [
            duplicate_letter(self.topics, a.topic, a.body, a.payload, batch.received_at)
            for a in batch.fresh
            if (out := outs.get(a.index)) is not None and out.outcome is Outcome.DUPLICATE
        ]

    def _dead(
        self,
        a: _Accepted,
        reason: RejectReason,
        detail: str,
        letters: list[DeadLetter],
        received_at: datetime,
    ) -> IngestResult:
        letters.append(make_letter(self.topics, a.topic, reason.value, detail, a.body, received_at))
        self._forget_series(a.site, a.payload)
        return IngestResult(Outcome.REJECTED, reason=reason, detail=detail)

    # -- health and upkeep ----------------------------------------------------------------

    def healthy(self) -> str | None:
        """None when the registry and the store answer a trivial query; else what failed."""
        try:
            with self.registry() as session:
                session.execute(text("SELECT 1"))
        except Exception as exc:
            return f"registry: {error_line(exc)}"
        try:
            self.store.latest(["_probe_"], "energy_import", 1, site="_probe_")
        except Exception as exc:
            return f"series store: {error_line(exc)}"
        return None

    def _outage_check(self, exc: Exception) -> None:
        problem = self.healthy()
        if problem is not None:
            raise StoreUnavailable(f"{problem} (after: {error_line(exc)})") from exc

    def maintain(self) -> dict[str, int]:
        """Purge dead letters older than the quota's age and duplicate-filter streams idle
        longer than the filter's age (their seqs would be refused as too old anyway)."""
        now = self._now()
        with self.registry.begin() as session:
            letters = purge_letters(session, now - self.quota.max_age)
            streams = session.execute(
                delete(IngestStream).where(
                    IngestStream.updated_at < now - timedelta(seconds=self.dedupe.max_age_s)
                )
            ).rowcount
        with self._stats_lock:
            self.stats.purged += letters
        return {"letters": letters, "streams": streams}

    def _count_isolation(self) -> None:
        with self._stats_lock:
            self.stats.isolations += 1

    def _forget_series(self, site: str, payload: ReadingsPayload) -> None:
        with self._lock:
            for r in payload.readings:
                self._series.pop((site, r.meter, r.quantity), None)

    # -- the steps ------------------------------------------------------------------------

    def _forget_keys_if_revoked(self) -> None:
        """Empty the key cache when keys were revoked since it was filled."""
        with self.registry() as session:
            mark = revocation_mark(session)
        if mark != self._revocations:
            self._keys.clear()
            self._revocations = mark

    def _known_key(self, kid: str) -> KnownKey | None:
        if not _KID.fullmatch(kid):  # not a key id (RFC 7638 thumbprint): never registered
            return None
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
        self,
        accepted: list[_Accepted],
        results: list[IngestResult | None],
        letters: list[DeadLetter],
        received_at: datetime,
    ) -> list[_Accepted]:
        """Envelopes not seen before, in (gateway, kid, seq) order; marks the others
        duplicate (each with a ``duplicate`` letter)."""
        if not accepted:
            return []
        seen = self.dedupe.known(
            [(a.payload.gateway, a.payload.kid, a.payload.seq) for a in accepted]
        )
        fresh = []
        for a in sorted(accepted, key=lambda a: (a.payload.gateway, a.payload.kid, a.payload.seq)):
            key = (a.payload.gateway, a.payload.kid, a.payload.seq)
            if key in seen:
                results[a.index] = IngestResult(Outcome.DUPLICATE)
                letters.append(
                    duplicate_letter(self.topics, a.topic, a.body, a.payload, received_at)
                )
            else:
                seen.add(key)
                fresh.append(a)
        return fresh

    def _validated_points(
        self, fresh: list[_Accepted], received_at: datetime
    ) -> list[list[SeriesPoint]]:
        self._load_series_state([p for a in fresh for p in a.points])
        received_ns = to_ns(received_at)
        points = []
        for a in fresh:
            pts = sorted(a.points, key=_time_ns)
            points.append(
                validate(
                    pts,
                    self._series,
                    received_ns,
                    clock_synced=a.payload.clock is ClockState.SYNCED,
                    rules=self.rules,
                )
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


_time_ns = operator.attrgetter("time_ns")


def error_line(exc: BaseException) -> str:
    """One line naming an exception: its type and the first line of its message."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:500]


def _joined(a: PreparedBatch, b: PreparedBatch, offset: int) -> PreparedBatch:
    """Batch ``a`` followed by batch ``b`` (whose indices start at ``offset``)."""
    return PreparedBatch(
        a.results + b.results,
        a.fresh + [dataclasses.replace(x, index=x.index + offset) for x in b.fresh],
        a.points_of + b.points_of,
        a.letters + b.letters,
        a.received_at,
    )
