"""Deposit refunds (退押金) as staff do them (decision 0041): the refunds in the caller's scope
and each step of :mod:`cloud.leases.deposits` done by a role that may, audited on the lease.

Roles: a manager (their buildings), a supervisor or an admin requests the refund of a
terminated lease, adds deductions (each with its evidence files, :mod:`cloud.leases.evidence`),
records the inspection and settles; a supervisor, finance or an admin approves — never the
account that settled it (four eyes); finance or an admin pays, with the bank transfer's
number. Legal and engineers do none of it; finance, managers, supervisors and admins read.

Each act is its own transaction with its audit entry (``subject="lease:ID"``, actions
``deposit_request``, ``deposit_deduction``, ``deposit_inspect``, ``deposit_settle``,
``deposit_approve``, ``deposit_pay``: the lease's history shows them). A refund out of the
caller's scope is :class:`UnknownRecord`; a role that may not act :class:`NotPermitted`; a
step its state does not allow :class:`DepositError` with the reason. Settlement and payment
queue a notice to the tenant in the tenant's language. Amounts are integer cents; instants
UTC; the SLA colour is the work queue's (:func:`cloud.leases.queue.sla_colour`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases import deposits, evidence
from cloud.leases.deposits import Deduction
from cloud.leases.errors import DepositInputError, FourEyes, NotPermitted, UnknownRecord
from cloud.leases.models import DepositDeduction, DepositRefund, Lease, Tenant
from cloud.leases.notices import notice
from cloud.leases.periods import LOCAL_TZ
from cloud.leases.policies import load_book
from cloud.leases.queue import sla_colour
from cloud.leases.roster import ScopedDesk, scope_condition
from cloud.notify.channels import Notification
from cloud.notify.outbox import enqueue
from cloud.registry.base import as_utc
from cloud.staff.accounts import Principal, Role
from cloud.staff.audit import record_change

#: who reads refunds
READ_ROLES = frozenset({Role.ADMIN, Role.FINANCE, Role.MANAGER, Role.SUPERVISOR})
#: who requests, deducts, inspects and settles (a manager: their buildings)
WORK_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.SUPERVISOR})
#: who approves (never the account that settled)
APPROVE_ROLES = frozenset({Role.ADMIN, Role.FINANCE, Role.SUPERVISOR})
#: who pays
PAY_ROLES = frozenset({Role.ADMIN, Role.FINANCE})
#: the largest deduction [cents] (1,000,000.00 yuan) and the longest reason
MAX_CENTS = 100_000_000
MAX_REASON = 500
MAX_LIST = 1000
#: the steps in order, with the role set that does each
STEPS = ("requested", "inspected", "settled", "approved", "paid")
ACT_ROLES = {
    "deduct": WORK_ROLES,
    "inspect": WORK_ROLES,
    "settle": WORK_ROLES,
    "approve": APPROVE_ROLES,
    "pay": PAY_ROLES,
}


@dataclass(frozen=True)
class DeductionRow:
    """A deduction [cents] with its evidence: (SHA-256, content type) of each stored file."""

    id: int
    reason: str
    cents: int
    evidence_uri: str
    files: tuple[tuple[str, str], ...]
    added_at: datetime
    added_by: str


@dataclass(frozen=True)
class RefundRow:
    """A refund as the lists and its page show it: the lease, tenant and unit (display
    names), the deposit, deductions, refund and shortfall [cents] (refund None before the
    settlement), the step waited for with its SLA's end (UTC) and colour, the steps done as
    (state, at, by), and (in :meth:`DepositDesk.refund`) the deductions."""

    id: int
    lease_id: str
    state: str
    site_id: str
    building: str
    unit_name: str
    tenant_name: str
    deposit_cents: int
    deductions_cents: int
    refund_cents: int | None
    shortfall_cents: int
    arrears_cents: int
    waiting_for: str | None
    due_at: datetime | None
    sla: str | None
    payment_ref: str | None
    steps: tuple[tuple[str, datetime, str], ...]
    deductions: tuple[DeductionRow, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["steps"] = [{"state": s, "at": at, "by": by} for s, at, by in self.steps]
        out["deductions"] = [
            {
                **{k: getattr(d, k) for k in d.__dataclass_fields__ if k != "files"},
                "files": [{"sha256": h, "content_type": c} for h, c in d.files],
            }
            for d in self.deductions
        ]
        return out


def _values(r: DepositRefund) -> dict[str, Any]:
    """What the audit log keeps of a refund."""
    return {
        "refund": r.id,
        "state": r.state,
        "deposit_cents": r.deposit_cents,
        "deductions_cents": r.deductions_cents,
        "refund_cents": r.refund_cents,
        "shortfall_cents": r.shortfall_cents,
        "arrears_cents": r.arrears_cents,
        "payment_ref": r.payment_ref,
    }


class DepositDesk(ScopedDesk):
    """Lists, opens and moves deposit refunds within a staff member's scope."""

    @staticmethod
    def _may(who: Principal, roles: frozenset[Role], what: str) -> None:
        if who.role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise NotPermitted(f"the {who.role.value} role does not {what}: {allowed} do")

    # ------------------------------------------------------------------------------ reading

    def refunds(
        self,
        who: Principal,
        *,
        state: str | None = None,
        lease_id: str | None = None,
        limit: int = 500,
    ) -> list[RefundRow]:
        """The refunds of the leases ``who`` sees, the most urgent first (by the end of the
        waited step's SLA; paid ones last, newest first); narrowed to one ``state`` or
        lease."""
        self._may(who, READ_ROLES, "read deposit refunds")
        if state is not None and state not in STEPS:
            raise DepositInputError(f"state {state[:20]!r}: expected one of {', '.join(STEPS)}")
        query = (
            select(DepositRefund, Lease, Unit, Tenant)
            .join(Lease, Lease.id == DepositRefund.lease_id)
            .join(Unit, Unit.id == Lease.unit_id)
            .join(Tenant, Tenant.id == Lease.tenant_id)
            .order_by(DepositRefund.id.desc())
            .limit(min(max(limit, 1), MAX_LIST))
        )
        scope = scope_condition(who)
        if scope is not None:
            query = query.where(scope)
        if state is not None:
            query = query.where(DepositRefund.state == state)
        if lease_id is not None:
            query = query.where(DepositRefund.lease_id == lease_id)
        with self.sessions() as session:
            rows = session.execute(query).all()
            sums = _deducted(session, [r.id for r, *_ in rows])
            out = [self._row(session, *row, sums.get(row[0].id, 0)) for row in rows]
        far = datetime.max.replace(tzinfo=out[0].steps[0][1].tzinfo) if out else None
        return sorted(out, key=lambda r: (r.due_at is None, r.due_at or far, -r.id))

    def refund(self, who: Principal, refund_id: int) -> RefundRow:
        """One refund with its steps and deductions; UnknownRecord out of scope."""
        self._may(who, READ_ROLES, "read deposit refunds")
        with self.sessions() as session:
            refund, lease = self._open(session, who, refund_id)
            return self._full(session, refund, lease)

    def evidence(self, who: Principal, refund_id: int, sha256: str) -> tuple[str, bytes]:
        """(content type, bytes) of a file a deduction of the refund names; UnknownRecord
        for a refund out of scope or a file it does not name."""
        self._may(who, READ_ROLES, "read deposit refunds")
        with self.sessions() as session:
            refund, _lease = self._open(session, who, refund_id)
            named = {
                h
                for u in session.scalars(
                    select(DepositDeduction.evidence_uri).where(
                        DepositDeduction.refund_id == refund.id
                    )
                )
                for h in evidence.hashes(u)
            }
            stored = session.get(evidence.DepositEvidence, sha256) if sha256 in named else None
            if stored is None:
                raise UnknownRecord(f"deposit refund {refund_id} has no evidence {sha256[:64]!r}")
            return stored.content_type, bytes(stored.content)

    @staticmethod
    def acts_for(who: Principal, row: RefundRow) -> list[str]:
        """The acts ``who`` may do on the refund now (its next step, and ``deduct`` before the
        settlement): what a page offers."""
        nxt = {
            "requested": ["deduct", "inspect"],
            "inspected": ["deduct", "settle"],
            "settled": ["approve"],
            "approved": ["pay"],
        }.get(row.state, [])
        settler = next((by for s, _at, by in row.steps if s == "settled"), None)
        return [
            a
            for a in nxt
            if who.role in ACT_ROLES[a] and not (a == "approve" and settler == who.username)
        ]

    # --------------------------------------------------------------------------------- acts

    def request(self, who: Principal, lease_id: str) -> RefundRow:
        """Open the refund of a terminated lease's deposit (DepositError when the lease is
        not terminated or its refund is requested already)."""
        self._may(who, WORK_ROLES, "request deposit refunds")
        self.roster.lease(who, lease_id)
        at = self.clock()
        with self.sessions.begin() as session:
            refund = deposits.request_refund(session, lease_id, by=who.username, at=at)
            self._audit(session, who, refund, None, "deposit_request", "deposit refund requested")
            return self._full(session, refund, session.get(Lease, lease_id))

    def deduct(
        self,
        who: Principal,
        refund_id: int,
        *,
        cents: int,
        reason: str,
        files: Sequence[tuple[str, bytes]],
    ) -> RefundRow:
        """Add a deduction of ``cents`` for ``reason`` with its evidence ``files`` ((name,
        bytes): JPEG, PNG or PDF, each at most 10 MB) before the settlement."""
        self._may(who, WORK_ROLES, "add deductions")
        reason = reason.strip()
        if not 0 < cents <= MAX_CENTS:
            raise DepositInputError(f"amount: expected 0.01 to {MAX_CENTS // 100}.00 yuan")
        if not 1 <= len(reason) <= MAX_REASON:
            raise DepositInputError(f"reason: expected 1 to {MAX_REASON} characters")
        at = self.clock()
        with self.sessions.begin() as session:
            refund, lease = self._open(session, who, refund_id, lock=True)
            digests = evidence.store(
                session,
                files,
                by=who.username,
                at=at,
                already=evidence.count_on(session, refund.id),
            )
            row = deposits.add_deduction(
                session,
                refund.id,
                Deduction(
                    reason=reason,
                    cents=cents,
                    evidence_uri=" ".join(evidence.uri(h) for h in digests),
                    evidence_sha256=digests[0],
                ),
                by=who.username,
                at=at,
            )
            record_change(
                session,
                at=at,
                actor=who.username,
                origin=who.origin,
                action="deposit_deduction",
                subject=f"lease:{lease.id}",
                before=None,
                after={
                    "refund": refund.id,
                    "deduction": row.id,
                    "reason": reason,
                    "cents": cents,
                    "evidence": row.evidence_uri,
                },
                note=f"deposit refund {refund.id}: deduction added",
            )
            return self._full(session, refund, lease)

    def remove_deduction(
        self, who: Principal, refund_id: int, deduction_id: int, *, reason: str
    ) -> RefundRow:
        """Take back a deduction added by mistake, before the settlement, saying why (1 to
        :data:`MAX_REASON` characters); audited with what it was."""
        self._may(who, WORK_ROLES, "take back deductions")
        reason = reason.strip()
        if not 1 <= len(reason) <= MAX_REASON:
            raise DepositInputError(f"reason: expected 1 to {MAX_REASON} characters")
        at = self.clock()
        with self.sessions.begin() as session:
            refund, lease = self._open(session, who, refund_id, lock=True)
            row = deposits.remove_deduction(session, refund.id, deduction_id)
            record_change(
                session,
                at=at,
                actor=who.username,
                origin=who.origin,
                action="deposit_deduction_removed",
                subject=f"lease:{lease.id}",
                before={
                    "refund": refund.id,
                    "deduction": row.id,
                    "reason": row.reason,
                    "cents": row.cents,
                    "evidence": row.evidence_uri,
                },
                after=None,
                note=f"deposit refund {refund.id}: deduction {row.id} taken back: {reason}",
            )
            return self._full(session, refund, lease)

    def act(self, who: Principal, refund_id: int, step: str, reference: str = "") -> RefundRow:
        """Do ``step`` (inspect, settle, approve, pay) on a refund; pay takes the bank
        transfer's number (``reference``, 1 to 64 characters). FourEyes when the account
        that settled approves."""
        if step not in ("inspect", "settle", "approve", "pay"):
            raise DepositInputError(f"step {step[:20]!r}: expected inspect, settle, approve, pay")
        self._may(who, ACT_ROLES[step], f"{step} deposit refunds")
        reference = reference.strip()
        if step == "pay" and not 1 <= len(reference) <= deposits.MAX_REFERENCE:
            raise DepositInputError(
                f"reference: expected the bank transfer's number, 1 to "
                f"{deposits.MAX_REFERENCE} characters"
            )
        at = self.clock()
        with self.sessions.begin() as session:
            refund, lease = self._open(session, who, refund_id, lock=True)
            before = _values(refund)
            if step == "inspect":
                deposits.inspect_unit(session, refund.id, by=who.username, at=at)
            elif step == "settle":
                deposits.settle(session, refund.id, by=who.username, at=at)
                self._tell_tenant(session, refund, lease, "deposit_settled", at)
            elif step == "approve":
                if refund.settled_by == who.username and refund.state == "settled":
                    raise FourEyes(
                        f"deposit refund {refund.id} was settled by you: another person approves it"
                    )
                deposits.approve(session, refund.id, by=who.username, at=at)
            else:
                deposits.pay(session, refund.id, by=who.username, at=at, reference=reference)
                self._tell_tenant(session, refund, lease, "deposit_paid", at)
            self._audit(session, who, refund, before, f"deposit_{step}", f"deposit {step}")
            return self._full(session, refund, lease)

    # ------------------------------------------------------------------------------ helpers

    def _open(
        self, session: Session, who: Principal, refund_id: int, *, lock: bool = False
    ) -> tuple[DepositRefund, Lease]:
        query = select(DepositRefund).where(DepositRefund.id == refund_id)
        refund = session.scalars(query.with_for_update() if lock else query).first()
        if refund is None or not self.roster.leases(who, lease_id=refund.lease_id, limit=1):
            raise UnknownRecord(f"no deposit refund {refund_id} on a lease you see")
        lease = session.get(Lease, refund.lease_id)
        assert lease is not None  # a foreign key
        return refund, lease

    def _row(
        self,
        session: Session,
        refund: DepositRefund,
        lease: Lease,
        unit: Unit,
        tenant: Tenant,
        deducted: int,
    ) -> RefundRow:
        today = self.today()
        book = load_book(session, today, {lease.id})
        due = deposits.step_due(refund, book.policy(lease.id).deposit_sla_hours)
        return RefundRow(
            id=refund.id,
            lease_id=lease.id,
            state=refund.state,
            site_id=unit.site_id,
            building=unit.building,
            unit_name=unit.name or unit.id,
            tenant_name=tenant.name,
            deposit_cents=refund.deposit_cents,
            deductions_cents=deducted,
            refund_cents=refund.refund_cents,
            shortfall_cents=refund.shortfall_cents,
            arrears_cents=refund.arrears_cents or 0,
            waiting_for=due[0] if due else None,
            due_at=due[1] if due else None,
            sla=sla_colour(due[1].astimezone(LOCAL_TZ).date(), today) if due else None,
            payment_ref=refund.payment_ref,
            steps=tuple(
                (s, as_utc(getattr(refund, f"{s}_at")), str(getattr(refund, f"{s}_by")))
                for s in STEPS
                if getattr(refund, f"{s}_at") is not None
            ),
        )

    def _full(self, session: Session, refund: DepositRefund, lease: Lease | None) -> RefundRow:
        assert lease is not None
        unit = session.get(Unit, lease.unit_id)
        tenant = session.get(Tenant, lease.tenant_id)
        assert unit is not None and tenant is not None
        rows = list(
            session.scalars(
                select(DepositDeduction)
                .where(DepositDeduction.refund_id == refund.id)
                .order_by(DepositDeduction.id)
            )
        )
        kinds = evidence.kinds_of(
            session, [h for d in rows for h in evidence.hashes(d.evidence_uri)]
        )
        base = self._row(session, refund, lease, unit, tenant, sum(d.cents for d in rows))
        return RefundRow(
            **{k: getattr(base, k) for k in base.__dataclass_fields__ if k != "deductions"},
            deductions=tuple(
                DeductionRow(
                    d.id,
                    d.reason,
                    d.cents,
                    d.evidence_uri,
                    tuple((h, kinds.get(h, "")) for h in evidence.hashes(d.evidence_uri)),
                    as_utc(d.added_at),
                    d.added_by,
                )
                for d in rows
            ),
        )

    def _audit(
        self,
        session: Session,
        who: Principal,
        refund: DepositRefund,
        before: dict[str, Any] | None,
        action: str,
        note: str,
    ) -> None:
        session.flush()
        record_change(
            session,
            at=self.clock(),
            actor=who.username,
            origin=who.origin,
            action=action,
            subject=f"lease:{refund.lease_id}",
            before=before,
            after=_values(refund),
            note=f"{note} (refund {refund.id})",
        )

    def _tell_tenant(
        self, session: Session, refund: DepositRefund, lease: Lease, code: str, at: datetime
    ) -> None:
        """Queue the settlement or payment notice to the tenant, in their language."""
        tenant = session.get(Tenant, lease.tenant_id)
        unit = session.get(Unit, lease.unit_id)
        assert tenant is not None and unit is not None
        deductions = [
            {"reason": d.reason, "cents": d.cents}
            for d in session.scalars(
                select(DepositDeduction)
                .where(DepositDeduction.refund_id == refund.id)
                .order_by(DepositDeduction.id)
            )
        ]
        values = {
            "name": tenant.name,
            "lease": lease.id,
            "unit": unit.name or unit.id,
            "deposit_cents": refund.deposit_cents,
            "refund_cents": refund.refund_cents or 0,
            "shortfall_cents": refund.shortfall_cents,
            "arrears_cents": refund.arrears_cents or 0,
            "deductions": deductions,
            "reference": refund.payment_ref or "",
        }
        subject, body = notice(code, tenant.language, values)
        key = f"{code.replace('_', '-')}:{refund.id}"
        data = {"refund": refund.id, "lease": lease.id, "refund_cents": refund.refund_cents}
        enqueue(
            session,
            [(tenant.channel, Notification(key, tenant.address, subject, body, data))],
            now=as_utc(at),
        )


def _deducted(session: Session, refund_ids: Sequence[int]) -> dict[int, int]:
    """Σ deductions [cents] per refund."""
    if not refund_ids:
        return {}
    return {
        rid: int(total)
        for rid, total in session.execute(
            select(DepositDeduction.refund_id, func.sum(DepositDeduction.cents))
            .where(DepositDeduction.refund_id.in_(list(refund_ids)))
            .group_by(DepositDeduction.refund_id)
        )
    }
