"""Throttling of failed sign-ins, per account and per source address, kept in the registry so
that every web worker sees the same counters (decision 0017).

A failure counts against the account name typed (``account:<name>``, known or not, so the
answers do not tell which names exist) and against the client's address
(``source:<address>``). A run of failures ends after :attr:`ThrottlePolicy.window` without
one. After :attr:`~ThrottlePolicy.free_failures` failures in a run each further attempt must
wait a delay that doubles from :attr:`~ThrottlePolicy.first_delay` up to
:attr:`~ThrottlePolicy.max_delay` (refused with a Retry-After, without checking the password);
at :attr:`~ThrottlePolicy.lock_account_after` failures the account is locked until an admin
unlocks it; at :attr:`~ThrottlePolicy.block_source_after` the address is blocked for
:attr:`~ThrottlePolicy.source_block` (or until an admin unlocks it). A successful sign-in ends
the account's run; the source's run ends only with time, so a valid account cannot be used to
reset a guessing address. Counters are changed with single UPDATE statements, so parallel
failures from several workers are all counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from cloud.registry.base import as_utc
from cloud.staff.models import SignInCounter

ACCOUNT = "account:"
SOURCE = "source:"
#: Rows without a lock in force are deleted this long after their last failure (an account's
#: lock stays until an admin lifts it).
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class ThrottlePolicy:
    """The numbers of the throttle (the defaults are decision 0017's)."""

    window: timedelta = timedelta(minutes=15)
    free_failures: int = 3
    first_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(seconds=60)
    lock_account_after: int = 10
    block_source_after: int = 30
    source_block: timedelta = timedelta(minutes=15)

    def delay(self, failures: int) -> timedelta:
        """How long the next attempt waits after ``failures`` failures in a run."""
        if failures < self.free_failures:
            return timedelta(0)
        steps = min(failures - self.free_failures, 30)
        return min(self.first_delay * (2**steps), self.max_delay)


class Throttled(Exception):
    """Too soon after failed sign-ins (or the source is blocked); retry after ``retry_after_s``."""

    def __init__(self, retry_after_s: int, what: str) -> None:
        where = "for this account" if what == "account" else "from this address"
        super().__init__(f"too many failed sign-ins {where}; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s
        self.what = what


class Locked(Exception):
    """The account is locked after too many failed sign-ins, until an admin unlocks it."""


@dataclass(frozen=True)
class Lock:
    """A lock as the admin page lists it: ``kind`` is ``account`` or ``source``."""

    kind: str
    subject: str
    failures: int
    locked_at: datetime
    until: datetime | None  # None: until an admin unlocks it


def _ceil_s(delta: timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


class SignInThrottle:
    """Reads and changes the registry's sign-in counters."""

    def __init__(self, sessions: sessionmaker[Session], policy: ThrottlePolicy | None = None):
        self.sessions = sessions
        self.policy = policy or ThrottlePolicy()

    def _live(self, row: SignInCounter | None, now: datetime) -> SignInCounter | None:
        """The row if its run still counts at ``now``."""
        if row is None:
            return None
        if row.locked_at is not None:
            ran_out = as_utc(row.locked_at) + self.policy.source_block <= now
            if row.key.startswith(SOURCE) and ran_out:
                return None
            return row
        return row if as_utc(row.last_failure_at) + self.policy.window > now else None

    def check(self, account: str | None, source: str | None, now: datetime) -> None:
        """Raise Locked or Throttled when an attempt for ``account`` from ``source`` must not be
        checked now; return otherwise."""
        keys = [k for k in (account and ACCOUNT + account, source and SOURCE + source) if k]
        if not keys:
            return
        with self.sessions() as session:
            rows = session.scalars(select(SignInCounter).where(SignInCounter.key.in_(keys)))
            live = [r for r in (self._live(r, now) for r in rows) if r is not None]
        wait = timedelta(0)
        what = ""
        for row in live:
            if row.locked_at is not None and row.key.startswith(ACCOUNT):
                raise Locked(
                    "this account is locked after too many failed sign-ins; "
                    "an administrator can unlock it"
                )
            if row.locked_at is not None:
                until = as_utc(row.locked_at) + self.policy.source_block
            else:
                delay = self.policy.delay(row.failures)
                if not delay:
                    # no wait at this count: a failure another worker stamped after this
                    # attempt's clock was read must not make it wait
                    continue
                until = as_utc(row.last_failure_at) + delay
            if until - now > wait:
                wait, what = until - now, "account" if row.key.startswith(ACCOUNT) else "address"
        if wait > timedelta(0):
            raise Throttled(_ceil_s(wait), what)

    def failed(self, account: str | None, source: str | None, now: datetime) -> None:
        """Count a failed sign-in; lock the account or block the source at its limit."""
        pairs = [
            (ACCOUNT + account, self.policy.lock_account_after) if account else None,
            (SOURCE + source, self.policy.block_source_after) if source else None,
        ]
        with self.sessions.begin() as session:
            for key, limit in (p for p in pairs if p is not None):
                self._count(session, key[:120], limit, now)
            stale = now - FORGET_AFTER
            session.execute(
                delete(SignInCounter).where(
                    SignInCounter.last_failure_at < stale,
                    SignInCounter.locked_at.is_(None)
                    | (
                        SignInCounter.key.startswith(SOURCE)
                        & (SignInCounter.locked_at < stale - self.policy.source_block)
                    ),
                )
            )

    def _count(self, session: Session, key: str, limit: int, now: datetime) -> None:
        policy = self.policy
        table = SignInCounter
        # a run that ended (quiet for the window, or a source block that ran out) starts again
        ended = (table.locked_at.is_(None) & (table.last_failure_at <= now - policy.window)) | (
            table.key.startswith(SOURCE) & (table.locked_at <= now - policy.source_block)
        )
        session.execute(
            update(table)
            .where(table.key == key, ended)
            .values(failures=0, first_failure_at=now, locked_at=None)
        )
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(
            insert(table)
            .values(key=key, failures=0, first_failure_at=now, last_failure_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
        session.execute(
            update(table)
            .where(table.key == key)
            .values(failures=table.failures + 1, last_failure_at=now)
        )
        session.execute(
            update(table)
            .where(table.key == key, table.locked_at.is_(None), table.failures >= limit)
            .values(locked_at=now)
        )

    def succeeded(self, account: str) -> None:
        """End the account's run of failures (a lock stays)."""
        with self.sessions.begin() as session:
            session.execute(
                delete(SignInCounter).where(
                    SignInCounter.key == ACCOUNT + account, SignInCounter.locked_at.is_(None)
                )
            )

    def unlock(
        self, session: Session, *, account: str | None = None, source: str | None = None
    ) -> bool:
        """Forget the failures of ``account`` or ``source`` in the caller's transaction;
        whether there were any."""
        key = ACCOUNT + account if account is not None else SOURCE + (source or "")
        done = session.execute(delete(SignInCounter).where(SignInCounter.key == key))
        return bool(done.rowcount)  # type: ignore[attr-defined]

    def locks(self, now: datetime) -> list[Lock]:
        """Locked accounts and blocked sources in force at ``now``, newest first."""
        with self.sessions() as session:
            rows = session.scalars(
                select(SignInCounter)
                .where(SignInCounter.locked_at.is_not(None))
                .order_by(SignInCounter.locked_at.desc())
            ).all()
        out = []
        for row in rows:
            if self._live(row, now) is None or row.locked_at is None:
                continue
            kind, _, subject = row.key.partition(":")
            until = None if kind == "account" else as_utc(row.locked_at) + self.policy.source_block
            out.append(Lock(kind, subject, row.failures, as_utc(row.locked_at), until))
        return out

    def failures(self, key: str) -> int:
        """The stored failure count of a key (0 when none), for tests and the admin page."""
        with self.sessions() as session:
            return int(
                session.scalar(
                    select(func.coalesce(SignInCounter.failures, 0)).where(SignInCounter.key == key)
                )
                or 0
            )
