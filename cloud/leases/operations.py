"""Lease operations for staff: sign, hand over (activate), renew and terminate (move out), each
within the caller's sites and buildings, through :mod:`cloud.leases.lifecycle`, and each in
the audit log (``record_change``, subject ``lease:ID``, the lease's fields before and after)
in the same transaction as the change.

Days are local calendar days (Asia/Shanghai), accepted from a year before today to a year
after; amounts are integer cents. A lease out of scope is not found (:class:`UnknownRecord`),
a move its state does not allow is :class:`IllegalTransition`, a bad value :class:`TermsError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cloud.leases import lifecycle
from cloud.leases.errors import LeaseError, NotPermitted, TermsError
from cloud.leases.models import Lease
from cloud.leases.roster import ScopedDesk
from cloud.staff.accounts import LEDGER_ROLES, Principal
from cloud.staff.audit import record_change

#: how a lease may be signed (stored in the signing transition's reason)
SIGN_METHODS = ("paper", "e-sign")
#: longest termination reason [characters]
MAX_REASON = 500
#: how far from today an operation's day may be [days]
MAX_DAYS_AWAY = 366


@dataclass(frozen=True)
class Done:
    """The lease after an operation (a renewal's successor is ``successor``)."""

    lease_id: str
    status: str
    successor: str | None = None


class LeaseOperations(ScopedDesk):
    """Sign, hand over, renew, terminate leases for a staff member, audited."""

    def check(self, who: Principal, lease_id: str) -> None:
        """The role may change leases and the lease is in ``who``'s scope (checked before
        any value, so that a lease out of scope is not found whatever is asked of it)."""
        if who.role not in LEDGER_ROLES:
            raise NotPermitted(f"the {who.role.value} role may not change leases")
        self.roster.lease(who, lease_id)  # UnknownRecord out of scope

    def _day(self, name: str, day: date | None) -> date:
        today = self.today()
        if day is None:
            return today
        low, high = today - timedelta(days=MAX_DAYS_AWAY), today + timedelta(days=MAX_DAYS_AWAY)
        if not low <= day <= high:
            raise TermsError(f"{name} {day}: expected a day from {low} to {high}")
        return day

    def _run(
        self,
        who: Principal,
        lease_id: str,
        action: str,
        change: Callable[[Session], Lease],
        note: str,
    ) -> Done:
        with self.sessions.begin() as session:
            lease = lifecycle.get_lease(session, lease_id)
            before = lifecycle.snapshot(lease)
            result = change(session)
            after = lifecycle.snapshot(lease)
            successor = result.id if result.id != lease_id else None
            changes = [(lease_id, before, after, note)]
            if successor:  # a renewal: its successor is created
                changes.append(
                    (successor, None, lifecycle.snapshot(result), f"renewal of {lease_id}")
                )
            for subject, old, new, why in changes:
                record_change(
                    session,
                    at=self.clock(),
                    actor=who.username,
                    origin=who.origin,
                    action=action,
                    subject=f"lease:{subject}",
                    before=old,
                    after=new,
                    note=why,
                )
            return Done(lease_id, lease.status, successor)

    def sign(self, who: Principal, lease_id: str, *, on: date | None, how: str) -> Done:
        """draft → signed on ``on`` (default today), ``how`` one of :data:`SIGN_METHODS`."""
        self.check(who, lease_id)
        if how not in SIGN_METHODS:
            raise TermsError(f"how {how!r}: expected one of {', '.join(SIGN_METHODS)}")
        day = self._day("signed on", on)
        return self._run(
            who,
            lease_id,
            "sign",
            lambda s: lifecycle.sign(
                s, lease_id, on=day, by=who.username, how=how, clock=self.clock
            ),
            f"signed {day} ({how})",
        )

    def hand_over(self, who: Principal, lease_id: str, *, on: date | None) -> Done:
        """signed → active: keys handed over on ``on`` (default today)."""
        self.check(who, lease_id)
        day = self._day("handed over on", on)
        return self._run(
            who,
            lease_id,
            "handover",
            lambda s: lifecycle.hand_over(s, lease_id, on=day, by=who.username, clock=self.clock),
            f"handed over {day}",
        )

    def renew(
        self,
        who: Principal,
        lease_id: str,
        *,
        monthly_cents: int | None,
        term_months: int | None,
        start_on: date | None = None,
    ) -> Done:
        """expiring | open-ended → renewed, with a successor at ``monthly_cents`` (default:
        the rent in force) for ``term_months`` (default: the lease's renewal term)."""
        self.check(who, lease_id)
        if monthly_cents is not None and not 0 < monthly_cents <= 10**12:
            raise TermsError(f"monthly rent {monthly_cents} cents: expected more than 0")
        if term_months is not None and not 1 <= term_months <= 120:
            raise TermsError(f"term {term_months} months: expected 1 to 120")
        begin = self._day("renewal start", start_on) if start_on else None
        today = self.today()

        def change(s: Session) -> Lease:
            return lifecycle.renew(
                s,
                lease_id,
                monthly_cents=monthly_cents,
                today=today,
                by=who.username,
                term_months=term_months,
                start_on=begin,
                clock=self.clock,
            )

        return self._run(who, lease_id, "renew", change, "renewed")

    def terminate(self, who: Principal, lease_id: str, *, on: date | None, reason: str) -> Done:
        """→ terminated; ``on`` is the move-out day (default today), ``reason`` required."""
        self.check(who, lease_id)
        reason = " ".join(reason.split())
        if not reason or len(reason) > MAX_REASON:
            raise TermsError(f"reason: expected 1 to {MAX_REASON} characters")
        day = self._day("move-out day", on)
        today = self.today()
        return self._run(
            who,
            lease_id,
            "terminate",
            lambda s: lifecycle.terminate(
                s, lease_id, on=day, today=today, by=who.username, reason=reason, clock=self.clock
            ),
            reason,
        )

    @staticmethod
    def many(lease_ids: list[str], op: Callable[[str], Done]) -> list[dict[str, Any]]:
        """``op`` on each lease in turn (each its own transaction): what became of each;
        a refusal is reported for its lease and the others go on."""
        out: list[dict[str, Any]] = []
        for lease_id in lease_ids:
            try:
                done = op(lease_id)
                out.append({"lease": lease_id, "status": done.status, "error": None})
            except LeaseError as exc:
                out.append({"lease": lease_id, "status": None, "error": str(exc)})
        return out
