"""What ingest decides per message: outcomes, dead-letter reasons, the counters, and
whether a failure is the store's or the data's."""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError

from cloud.ingest.dedupe import FilterContention
from cloud.series.base import SeriesStoreError


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
    TOO_OLD = "too_old"  # a time before the window (cloud.ingest.bounds)
    TOO_NEW = "too_new"  # a time after the window
    NEGATIVE_REGISTER = "negative_register"  # a cumulative register below 0
    STORE_REFUSED = "store_refused"  # the store or ledger refused this message's data
    STORE_FAILED = "store_failed"  # not written after the worker's last attempt
    #: stored before (a replay, or the broker's redelivery after a crash): counted as a
    #: duplicate and acknowledged; its letter keeps no payload (the readings are stored)
    DUPLICATE = "duplicate"


class StoreUnavailable(Exception):
    """The series store or the registry does not answer a trivial query: an outage, not the
    data's fault. Nothing of the batch counts as done; retry later."""


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    readings: int = 0
    reason: RejectReason | None = None
    detail: str = ""


@dataclass
class IngestStats:
    """Counters since start: envelopes by outcome, readings stored, rejections (dead
    letters) by reason; dead letters not kept (row quota) or kept without payload (byte
    quota); batches split to isolate a fault; letters purged."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    readings_stored: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    letters_dropped: int = 0
    payloads_dropped: int = 0
    isolations: int = 0
    purged: int = 0

    def as_dict(self) -> dict[str, object]:
        """The counters as plain JSON-able values."""
        return {
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "readings_stored": self.readings_stored,
            "reasons": dict(sorted(self.reasons.items())),
            "letters_dropped": self.letters_dropped,
            "payloads_dropped": self.payloads_dropped,
            "isolations": self.isolations,
            "purged": self.purged,
        }

    def count(self, result: IngestResult) -> None:
        if result.outcome is Outcome.STORED:
            self.stored += 1
            self.readings_stored += result.readings
        elif result.outcome is Outcome.DUPLICATE:
            self.duplicates += 1
        else:
            self.rejected += 1
            self.reasons[str(result.reason)] += 1


#: Failures caused by what was written (refused by the store or the ledger for its data).
_DATA_FAULTS: tuple[type[BaseException], ...] = (
    DataError,
    IntegrityError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
    OverflowError,
    ValueError,
    TypeError,
)
#: Failures of the store itself (down, unreachable, full, locked).
_OUTAGES: tuple[type[BaseException], ...] = (
    FilterContention,
    OSError,
    OperationalError,
    InterfaceError,
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
)


def is_outage(exc: BaseException) -> bool:
    """Whether a write failure looks like the store's (retry later) rather than the data's
    (dead-letter the message): judged on the exception and its causes. A data fault anywhere
    in the chain wins; a series-store error is an outage unless it is an HTTP 400/413/422
    answer (a point the store refuses)."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(e, _DATA_FAULTS) for e in chain):
        return False
    if any(isinstance(e, _OUTAGES) for e in chain):
        return True
    return isinstance(exc, SeriesStoreError) and not re.search(r"HTTP 4(00|13|22)\b", str(exc))
