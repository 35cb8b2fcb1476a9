"""Deposit refunds (docs/domain.md §5): request → inspection → settlement → approval → payment.

Each step has an SLA [hours] counted from the step before it (policy defaults: inspection
24 h after the request, settlement 48 h after the inspection, approval 24 h after the
settlement, payment 24 h — T+1 — after the approval). A step still waiting past its SLA is
flagged once (:func:`check_slas`, run daily), with a task and a notice to the manager's
supervisor. Steps happen in order, each at or after the one before; every deduction
carries its evidence (a stored attachment's URI and SHA-256) or is refused.

Settlement: refund = deposit − Σ deductions; deductions above the deposit are a shortfall
the tenant still owes (recorded, never a negative refund).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.leases.errors import DepositError, EvidenceMissing, UnknownRecord
from cloud.leases.lifecycle import get_lease
from cloud.leases.models import (
    DepositDeduction,
    DepositRefund,
    DepositSlaFlag,
    Invoice,
    Lease,
    LeaseStatus,
    LeaseTask,
    Staff,
)
from cloud.leases.notices import note_text, notice, task_note
from cloud.leases.payments import OPEN, account_of, record_payment
from cloud.leases.periods import LOCAL_TZ
from cloud.leases.policies import PolicyBook, load_book
from cloud.notify.channels import Notification
from cloud.notify.outbox import enqueue
from cloud.registry.base import as_utc

STATES = ("requested", "inspected", "settled", "approved", "paid")
WAITING_FOR = {
    "requested": "inspection",
    "inspected": "settlement",
    "settled": "approval",
    "approved": "payment",
}
_SINCE = {
    "requested": "requested_at",
    "inspected": "inspected_at",
    "settled": "settled_at",
    "approved": "approved_at",
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: the longest payment reference (a bank transfer's number)
MAX_REFERENCE = 64


def waiting_step(refund: DepositRefund) -> tuple[str, datetime] | None:
    """The step ``refund`` waits for and since when (UTC, its SLA counts from there); None
    once it is paid."""
    if refund.state not in WAITING_FOR:
        return None
    return WAITING_FOR[refund.state], as_utc(getattr(refund, _SINCE[refund.state]))


def step_due(refund: DepositRefund, sla_hours: Mapping[str, int]) -> tuple[str, datetime] | None:
    """The step waited for and the instant (UTC) its SLA [hours] runs out, by the policy's
    ``deposit_sla_hours``; None once the refund is paid."""
    found = waiting_step(refund)
    if found is None:
        return None
    step, since = found
    return step, since + timedelta(hours=sla_hours[step])


class Deduction(BaseModel):
    """A deduction [cents] with its reason and evidence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str = Field(min_length=1)
    cents: int = Field(gt=0)
    evidence_uri: str | None = None
    evidence_sha256: str | None = None


def _refund(session: Session, refund_id: int) -> DepositRefund:
    refund = session.get(DepositRefund, refund_id)
    if refund is None:
        raise UnknownRecord(f"deposit refund {refund_id} does not exist")
    return refund


def _step(refund: DepositRefund, expected: str, to: str, at: datetime, by: str) -> None:
    if refund.state != expected:
        raise DepositError(
            f"deposit refund {refund.id} (lease {refund.lease_id}) is "
            f"{refund.state}; only a {expected} refund can become {to}"
        )
    since = as_utc(getattr(refund, _SINCE[expected]))
    if as_utc(at) < since:
        raise DepositError(
            f"deposit refund {refund.id}: {to} at {at.isoformat()} is before "
            f"the {expected} step at {since.isoformat()}"
        )
    refund.state = to
    setattr(refund, f"{to}_at", as_utc(at))
    setattr(refund, f"{to}_by", by)


def request_refund(session: Session, lease_id: str, *, by: str, at: datetime) -> DepositRefund:
    """Open the refund of a terminated lease's deposit."""
    lease = get_lease(session, lease_id)
    if lease.status != LeaseStatus.TERMINATED:
        raise DepositError(
            f"lease {lease.id!r} is {lease.status}; a deposit is refunded after termination"
        )
    if (
        session.scalars(select(DepositRefund.id).where(DepositRefund.lease_id == lease.id)).first()
        is not None
    ):
        raise DepositError(f"lease {lease.id!r}: the deposit refund is requested already")
    refund = DepositRefund(
        lease_id=lease.id,
        state="requested",
        deposit_cents=lease.deposit_cents,
        requested_at=as_utc(at),
        requested_by=by,
        deductions_cents=0,
        shortfall_cents=0,
    )
    session.add(refund)
    session.flush()
    return refund


def add_deduction(
    session: Session, refund_id: int, deduction: Deduction, *, by: str, at: datetime
) -> DepositDeduction:
    """Add a deduction before the settlement; refused without evidence."""
    refund = _refund(session, refund_id)
    if refund.state not in ("requested", "inspected"):
        raise DepositError(
            f"deposit refund {refund.id} is {refund.state}; deductions are "
            "added before the settlement"
        )
    if not deduction.evidence_uri or not _SHA256.match(deduction.evidence_sha256 or ""):
        raise EvidenceMissing(
            f"deposit refund {refund.id}: deduction {deduction.reason!r} of "
            f"{deduction.cents} cents needs its evidence (an attachment URI and its SHA-256 "
            f"as 64 hex digits), got uri={deduction.evidence_uri!r} "
            f"sha256={deduction.evidence_sha256!r}"
        )
    row = DepositDeduction(
        refund_id=refund.id,
        reason=deduction.reason,
        cents=deduction.cents,
        evidence_uri=deduction.evidence_uri,
        evidence_sha256=deduction.evidence_sha256,
        added_at=as_utc(at),
        added_by=by,
    )
    session.add(row)
    session.flush()
    return row


def remove_deduction(session: Session, refund_id: int, deduction_id: int) -> DepositDeduction:
    """Take back a deduction added by mistake, before the settlement; the removed row (its
    evidence files stay stored: another deduction may name them)."""
    refund = _refund(session, refund_id)
    if refund.state not in ("requested", "inspected"):
        raise DepositError(
            f"deposit refund {refund.id} is {refund.state}; deductions are taken back before "
            "the settlement"
        )
    row = session.get(DepositDeduction, deduction_id)
    if row is None or row.refund_id != refund.id:
        raise UnknownRecord(f"deposit refund {refund.id} has no deduction {deduction_id}")
    session.delete(row)
    session.flush()
    return row


def inspect_unit(
    session: Session, refund_id: int, *, by: str, at: datetime, deductions: Sequence[Deduction] = ()
) -> DepositRefund:
    """requested → inspected, with the deductions the inspection found."""
    refund = _refund(session, refund_id)
    for d in deductions:
        add_deduction(session, refund.id, d, by=by, at=at)
    _step(refund, "requested", "inspected", at, by)
    session.flush()
    return refund


def settle(session: Session, refund_id: int, *, by: str, at: datetime) -> DepositRefund:
    """inspected → settled [cents]: the deductions first; what is left of the deposit then
    pays what the tenant's account still owes on its open invoices, due or not (a payment
    ``deposit-refund:ID`` on the settlement's local day, oldest invoice first:
    ``arrears_cents``); the rest is refunded. Deductions above the deposit are a shortfall
    (never a negative refund)."""
    refund = _refund(session, refund_id)
    _step(refund, "inspected", "settled", at, by)
    total = int(
        session.scalar(
            select(func.coalesce(func.sum(DepositDeduction.cents), 0)).where(
                DepositDeduction.refund_id == refund.id
            )
        )
    )
    rest = max(refund.deposit_cents - total, 0)
    account = account_of(session, refund.lease_id)
    owed = int(
        session.scalar(
            select(func.coalesce(func.sum(Invoice.total_cents - Invoice.paid_cents), 0)).where(
                Invoice.lease_id == account.id, Invoice.status == OPEN
            )
        )
    )
    offset = min(rest, owed)
    if offset:
        day = as_utc(at).astimezone(LOCAL_TZ).date()
        record_payment(
            session,
            refund.lease_id,
            cents=offset,
            received_on=day,
            ref=f"deposit-refund:{refund.id}",
        )
    refund.deductions_cents = total
    refund.arrears_cents = offset
    refund.refund_cents = rest - offset
    refund.shortfall_cents = max(total - refund.deposit_cents, 0)
    session.flush()
    return refund


def approve(session: Session, refund_id: int, *, by: str, at: datetime) -> DepositRefund:
    """settled → approved."""
    refund = _refund(session, refund_id)
    _step(refund, "settled", "approved", at, by)
    session.flush()
    return refund


def pay(
    session: Session, refund_id: int, *, by: str, at: datetime, reference: str | None = None
) -> DepositRefund:
    """approved → paid, with the bank transfer's number (``reference``, at most
    :data:`MAX_REFERENCE` characters) when given. A refund of 0 (all deducted) is paid too:
    that closes it."""
    if reference is not None and not 1 <= len(reference) <= MAX_REFERENCE:
        raise DepositError(
            f"payment reference: expected 1 to {MAX_REFERENCE} characters, got {len(reference)}"
        )
    refund = _refund(session, refund_id)
    _step(refund, "approved", "paid", at, by)
    refund.payment_ref = reference
    session.flush()
    return refund


@dataclass(frozen=True)
class SlaBreach:
    """A refund whose next step has waited longer than its SLA [hours]."""

    refund_id: int
    lease_id: str
    step: str
    waited_hours: int
    sla_hours: int


def check_slas(session: Session, now: datetime, rules: PolicyBook | None = None) -> list[SlaBreach]:
    """Flag (once per refund and step) every step waiting past its SLA at ``now``, open a
    task and notify the supervisor; return the new flags."""
    rules = rules or load_book(session, as_utc(now).astimezone(LOCAL_TZ).date())
    at = as_utc(now)
    rows = session.execute(
        select(DepositRefund, Lease)
        .join(Lease, Lease.id == DepositRefund.lease_id)
        .where(DepositRefund.state != "paid")
        .order_by(DepositRefund.id)
    ).all()
    flagged = set(session.execute(select(DepositSlaFlag.refund_id, DepositSlaFlag.step)))
    staff = {s.id: s for s in session.scalars(select(Staff))}
    out, messages = [], []
    for refund, lease in rows:
        step, since = waiting_step(refund) or ("", at)
        sla = rules.policy(lease.id).deposit_sla_hours[step]
        waited = at - since
        if waited <= timedelta(hours=sla) or (refund.id, step) in flagged:
            continue
        hours = int(waited.total_seconds() // 3600)
        session.add(
            DepositSlaFlag(
                refund_id=refund.id, step=step, flagged_at=at, waited_hours=hours, sla_hours=sla
            )
        )
        manager = staff[lease.manager_id]
        boss = staff.get(manager.supervisor_id or "", manager)
        key = f"deposit-sla:{refund.id}:{step}"
        what, code, values = task_note(
            "deposit_sla",
            {"refund": refund.id, "lease": lease.id, "step": step, "hours": hours, "sla": sla},
        )
        day = at.astimezone(LOCAL_TZ).date()
        session.add(
            LeaseTask(
                key=key,
                kind="deposit_sla",
                lease_id=lease.id,
                assignee_id=boss.id,
                opened_on=day,
                due_on=day + timedelta(days=1),
                note=what,
                note_code=code,
                note_params=values,
            )
        )
        subject, body = notice(
            "deposit_sla",
            boss.language,
            {"lease": lease.id, "what": note_text(code, values, boss.language, fallback=what)},
        )
        messages.append(
            (
                boss.channel,
                Notification(
                    key,
                    boss.address,
                    subject,
                    body,
                    {"refund": refund.id, "step": step, "waited_hours": hours},
                ),
            )
        )
        out.append(SlaBreach(refund.id, lease.id, step, hours, sla))
    enqueue(session, messages, now=at)
    session.flush()
    return out
