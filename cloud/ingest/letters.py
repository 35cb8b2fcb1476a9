"""Dead letters: kept within quotas, purged after an age, counted by reason.

Quotas (decision 0013): across all gateways at most ``max_rows`` rows and ``max_bytes`` bytes
of payload; per gateway named in the topic at most ``gateway_rows`` rows and
``gateway_bytes`` bytes. A letter over a byte quota is kept without its payload; a letter over
a row quota is not kept at all; both are counted (IngestStats ``letters_dropped`` and
``payloads_dropped``) and the message is acknowledged either way, so a flood of junk cannot
fill the disk nor stall ingest. Two workers check the quotas independently, so a quota can be
exceeded by at most one batch per worker. Letters older than ``max_age`` are purged by the
worker every ``purge_every_s`` and by ``meterflow cloud dead-letters purge``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloud.ingest.models import DeadLetter
from edge.wire import MAX_ENVELOPE_BYTES, ReadingsPayload, Topics


@dataclass(frozen=True)
class LetterQuota:
    """Bounds of the dead-letter table (rows, payload bytes), global and per gateway, and
    the age after which letters are purged."""

    max_rows: int = 100_000
    max_bytes: int = 256 * 2**20
    gateway_rows: int = 10_000
    gateway_bytes: int = 32 * 2**20
    max_age: timedelta = timedelta(days=30)


@dataclass
class Kept:
    """What one call of :func:`keep_letters` did."""

    kept: int = 0
    payloads_dropped: int = 0
    dropped: int = 0
    repeated: int = 0  # the same message was dead-lettered before (redelivery, replay)


def clean_text(text: str, limit: int) -> str:
    """``text`` without NUL or lone surrogates (which PostgreSQL refuses), at most ``limit``
    characters."""
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


def make_letter(
    topics: Topics, topic: str, reason: str, detail: str, body: bytes, received_at: datetime
) -> DeadLetter:
    """A dead letter for a refused message; the gateway is the one its topic names."""
    parts = topic.split("/")
    prefix_len = len(topics.prefix.split("/"))
    gateway = parts[prefix_len + 1] if len(parts) > prefix_len + 1 else None
    payload = body[:MAX_ENVELOPE_BYTES]
    digest = hashlib.sha256(topic.encode("utf-8", "surrogatepass") + b"\n" + body).hexdigest()
    return DeadLetter(
        received_at=received_at,
        topic=clean_text(topic, 300),
        reason=reason,
        detail=clean_text(detail, 2000),
        payload=payload,
        gateway_id=clean_text(gateway, 64) if gateway else None,
        size=len(payload),
        digest=digest,
    )


def duplicate_letter(
    topics: Topics, topic: str, body: bytes, payload: ReadingsPayload, received_at: datetime
) -> DeadLetter:
    """The letter of an envelope stored before (a replay, or the broker's redelivery after a
    crash): the gateway, key and seq, and no payload (its readings are stored once)."""
    letter = make_letter(
        topics,
        topic,
        "duplicate",
        f"gateway {payload.gateway} key {payload.kid} seq {payload.seq} was stored before (a "
        "replay, or a redelivery after a crash); its readings are stored once",
        body,
        received_at,
    )
    letter.payload, letter.size = b"", 0
    return letter


def keep_letters(session: Session, letters: list[DeadLetter], quota: LetterQuota) -> Kept:
    """Add ``letters`` to ``session`` within the quotas, but none whose message (digest) was
    kept before."""
    out = Kept()
    digests = {lt.digest for lt in letters if lt.digest}
    known = set(
        session.scalars(select(DeadLetter.digest).where(DeadLetter.digest.in_(sorted(digests))))
    )
    fresh = []
    for letter in letters:
        if letter.digest in known:
            out.repeated += 1
            continue
        if letter.digest:
            known.add(letter.digest)
        fresh.append(letter)
    letters = fresh
    if not letters:
        return out
    rows, size = session.execute(
        select(func.count(), func.coalesce(func.sum(DeadLetter.size), 0))
    ).one()
    gateways = sorted({lt.gateway_id for lt in letters if lt.gateway_id})
    per_gw = {
        gw: [n, b]
        for gw, n, b in session.execute(
            select(DeadLetter.gateway_id, func.count(), func.coalesce(func.sum(DeadLetter.size), 0))
            .where(DeadLetter.gateway_id.in_(gateways))
            .group_by(DeadLetter.gateway_id)
        )
    }
    for letter in letters:
        gw = per_gw.setdefault(letter.gateway_id or "", [0, 0]) if letter.gateway_id else [0, 0]
        if rows >= quota.max_rows or gw[0] >= quota.gateway_rows:
            out.dropped += 1
            continue
        if size + letter.size > quota.max_bytes or gw[1] + letter.size > quota.gateway_bytes:
            letter.payload, letter.size = b"", 0
            letter.detail = (letter.detail + " [payload not kept: dead-letter quota]")[-2000:]
            out.payloads_dropped += 1
        session.add(letter)
        rows, size = rows + 1, size + letter.size
        gw[0], gw[1] = gw[0] + 1, gw[1] + letter.size
        out.kept += 1
    return out


def purge_letters(session: Session, before: datetime) -> int:
    """Delete letters received before ``before``; returns how many."""
    return session.execute(delete(DeadLetter).where(DeadLetter.received_at < before)).rowcount


def letter_stats(session: Session) -> dict[str, object]:
    """Rows and payload bytes in total and by reason, the oldest letter's receipt time, and
    the ten gateways with most letters."""
    rows, size, oldest = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(DeadLetter.size), 0),
            func.min(DeadLetter.received_at),
        )
    ).one()
    by_reason = {
        reason: {"rows": n, "bytes": int(b)}
        for reason, n, b in session.execute(
            select(DeadLetter.reason, func.count(), func.coalesce(func.sum(DeadLetter.size), 0))
            .group_by(DeadLetter.reason)
            .order_by(DeadLetter.reason)
        )
    }
    top = [
        {"gateway": gw, "rows": n}
        for gw, n in session.execute(
            select(DeadLetter.gateway_id, func.count())
            .group_by(DeadLetter.gateway_id)
            .order_by(func.count().desc())
            .limit(10)
        )
    ]
    return {
        "rows": rows,
        "bytes": int(size),
        "oldest": None if oldest is None else oldest.isoformat(),
        "by_reason": by_reason,
        "top_gateways": top,
    }
