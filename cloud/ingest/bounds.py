"""Bounds ingest checks on a verified payload, beyond the wire schema's static ones.

The schema (:mod:`edge.wire`) already refuses seq >= 2^63, epoch >= 2^31, times outside
1970..2199 and values that are not finite decimals of at most 24 digits below 1E+15. Here,
relative to the receipt time: ``read_at`` and ``sent_at`` must lie within ``max_age`` before
and ``max_ahead`` after it; and cumulative registers (energy, water, gas, heat) must not be
negative. One reading out of bounds refuses the whole envelope (decision 0013); the detail
names the reading's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud.ingest.validation import is_cumulative
from cloud.series.base import SeriesPoint, to_ns
from edge.wire import ReadingsPayload

#: The gateway outbox's default age bound (edge.config OutboxConfig.max_age_days = 31 days)
#: plus a day for transit and clock error: anything older was evicted at the gateway.
DEFAULT_MAX_AGE = timedelta(days=32)
#: How far ahead of the receipt time a gateway's clock may be; beyond VeeRules.skew_s
#: (5 minutes) a reading is stored as suspect ``clock_skew``, beyond this it is refused.
DEFAULT_MAX_AHEAD = timedelta(hours=6)


@dataclass(frozen=True)
class TimeWindow:
    """Accepted times around the receipt time: [received - max_age, received + max_ahead]."""

    max_age: timedelta = DEFAULT_MAX_AGE
    max_ahead: timedelta = DEFAULT_MAX_AHEAD


@dataclass(frozen=True)
class OutOfBounds:
    """Why a payload is refused: ``reason`` is a dead-letter reason, ``detail`` one line."""

    reason: str
    detail: str


def check_payload(
    payload: ReadingsPayload,
    points: list[SeriesPoint],
    received_at: datetime,
    window: TimeWindow,
) -> OutOfBounds | None:
    """The first bound ``payload`` breaks (sent_at, then readings in order), or None.

    ``points`` are the payload's readings as series points, in the same order
    (:func:`cloud.ingest.points.payload_points`): the readings are checked on their integer
    times in one pass, and walked one by one only to name the first offender."""
    earliest, latest = received_at - window.max_age, received_at + window.max_ahead
    age_days = window.max_age / timedelta(days=1)
    ahead_h = window.max_ahead / timedelta(hours=1)

    def when(what: str, t: datetime) -> OutOfBounds | None:
        if t < earliest:
            return OutOfBounds(
                "too_old",
                f"{what} {t.isoformat()} is more than {age_days:g} days before receipt "
                f"({received_at.isoformat()}); older data was evicted at the gateway",
            )
        if t > latest:
            return OutOfBounds(
                "too_new",
                f"{what} {t.isoformat()} is more than {ahead_h:g} h after receipt "
                f"({received_at.isoformat()}); is the gateway's clock set?",
            )
        return None

    if (bad := when("sent_at", payload.sent_at)) is not None:
        return bad
    earliest_ns, latest_ns = to_ns(earliest), to_ns(latest)
    times = [p.time_ns for p in points]
    if (
        earliest_ns <= min(times)
        and max(times) <= latest_ns
        and not any(
            p.value is not None and p.value < 0 and is_cumulative(p.quantity) for p in points
        )
    ):
        return None
    for i, r in enumerate(payload.readings):
        if (bad := when(f"readings[{i}] ({r.meter}/{r.quantity}) read_at", r.read_at)) is not None:
            return bad
        if r.value is not None and r.value < 0 and is_cumulative(r.quantity):
            return OutOfBounds(
                "negative_register",
                f"readings[{i}] ({r.meter}/{r.quantity}) value {r.value}: a cumulative "
                f"register is never negative",
            )
    return None
