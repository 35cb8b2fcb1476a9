"""Ingest: verify a gateway's envelope, drop duplicates, store its readings, or dead-letter it.

Order of work for one message, chosen so that a crash at any point loses nothing and stores
nothing twice: verify → duplicate check → write points (idempotent per meter, quantity,
time) → record (gateway, seq) → the caller acknowledges the message to the broker.
A crash after the write but before the record makes the broker redeliver; the rewrite
replaces the same points.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cloud.registry.gateways import find_key
from cloud.registry.models import DeadLetter, SeenEnvelope
from cloud.series.base import SeriesPoint, SeriesStore, to_ns
from edge.wire import (
    MAX_ENVELOPE_BYTES,
    BadSignature,
    MalformedEnvelope,
    ReadingsPayload,
    Topics,
    envelope_kid,
    open_envelope,
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


class IngestService:
    """Turns raw ``up/readings`` messages into stored points; thread-safe."""

    def __init__(
        self, registry: sessionmaker[Session], store: SeriesStore, topics: Topics | None = None
    ) -> None:
        self.registry = registry
        self.store = store
        self.topics = topics or Topics()
        self.stats = IngestStats()
        self._stats_lock = threading.Lock()

    def handle(self, topic: str, body: bytes) -> IngestResult:
        """Process one message; returns only when its outcome is durable."""
        received_at = datetime.now(UTC)
        try:
            result = self._accept(topic, body, received_at)
        except _Rejected as rej:
            result = IngestResult(Outcome.REJECTED, reason=rej.reason, detail=rej.detail)
            with self.registry.begin() as session:
                session.add(
                    DeadLetter(
                        received_at=received_at,
                        topic=topic[:300],
                        reason=rej.reason.value,
                        detail=rej.detail[:2000],
                        payload=body[:MAX_ENVELOPE_BYTES],
                    )
                )
        with self._stats_lock:
            self.stats.count(result)
        return result

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
            kid = envelope_kid(body)
        except MalformedEnvelope as exc:
            raise _Rejected(RejectReason.MALFORMED, str(exc)) from None
        with self.registry() as session:
            key = find_key(session, kid)
        if key is None:
            raise _Rejected(RejectReason.UNKNOWN_KEY, f"key {kid!r} is not registered")
        if key.revoked:
            raise _Rejected(
                RejectReason.REVOKED_KEY, f"key {kid!r} of gateway {key.gateway_id!r} was revoked"
            )
        try:
            payload = open_envelope(body, key.public_key)
        except BadSignature as exc:
            raise _Rejected(RejectReason.BAD_SIGNATURE, str(exc)) from None
        except MalformedEnvelope as exc:
            raise _Rejected(RejectReason.MALFORMED, str(exc)) from None
        if not (payload.gateway == key.gateway_id == gateway and key.site_id == site):
            raise _Rejected(
                RejectReason.WRONG_GATEWAY,
                f"topic names {site}/{gateway}, payload gateway {payload.gateway!r}, key "
                f"{kid!r} belongs to {key.site_id}/{key.gateway_id}",
            )
        return site, payload

    def _accept(self, topic: str, body: bytes, received_at: datetime) -> IngestResult:
        site, payload = self._verify(topic, body)
        seen = exists().where(
            SeenEnvelope.gateway_id == payload.gateway, SeenEnvelope.seq == payload.seq
        )
        with self.registry() as session:
            if session.scalar(select(seen)):
                return IngestResult(Outcome.DUPLICATE)
        self.store.write(payload_points(site, payload))
        try:
            with self.registry.begin() as session:
                session.add(
                    SeenEnvelope(
                        gateway_id=payload.gateway,
                        seq=payload.seq,
                        epoch=payload.epoch,
                        reading_count=len(payload.readings),
                        received_at=received_at,
                    )
                )
        except IntegrityError:
            # Another worker stored the same envelope meanwhile; our rewrite was idempotent.
            return IngestResult(Outcome.DUPLICATE)
        return IngestResult(Outcome.STORED, readings=len(payload.readings))
