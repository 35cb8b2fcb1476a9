"""The work queue (待办, issue #18, decision 0034): what a staff member has to do, with its due
day, its SLA colour and a one-click action.

A person's items come from the records the daily jobs write, for their staff record (the web
account's ``staff_id``, else the staff record of the same id as the user name):

- ``reminder`` — a renewal reminder sent to them and not acknowledged; due
  ``acknowledge_within_days`` (policy) after it was sent, when it escalates. Action: ack.
- ``escalation`` — a reminder of one of their managers escalated to them, still not
  acknowledged; due the day it was escalated. Action: ack (acknowledges the lease's reminders).
- ``task`` — an open lease task assigned to them (collections, calls, renewal reviews, deposit
  SLAs, legal cases); due its ``due_on``. Action: done.
- ``deposit`` — a deposit refund of a lease they manage waiting for its next step; due when
  the step's SLA [hours] runs out. Its one click opens the refund's page (``refund_id``),
  where the step is done (decision 0041); so does a ``deposit_sla`` task's.
- ``approval`` — for supervisors and admins: an offer outside its band made by somebody else,
  waiting for their approval; due 2 days after it was made. Action: approve (offers page).
- ``case`` — for legal: an invoice handed over to legal (collections event ``legal_handover``)
  still owed, in their sites, unless an open ``legal_case`` task already lists the lease; due
  7 days after the hand-over. Legal also sees every open ``legal_case`` task in its scope.

Every item is within the caller's scope (sites, and buildings when the account is limited to
some). SLA colour against the local day: ``red`` overdue (due before today), ``amber`` due
today or tomorrow, ``green`` later. The overdue view (supervisors, admins) lists the red
items of everybody in their scope. Acknowledging a reminder stops its escalation
(:func:`cloud.leases.renewals.acknowledge_reminders`). Lists are bounded (:data:`MAX_ITEMS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from cloud.apportion.models import Unit
from cloud.leases.deposits import WAITING_FOR, step_due
from cloud.leases.errors import QueueError, UnknownRecord
from cloud.leases.models import (
    CollectionEvent,
    DepositRefund,
    Invoice,
    Lease,
    LeaseStatus,
    LeaseTask,
    RenewalOffer,
    RenewalReminder,
    Staff,
    Tenant,
)
from cloud.leases.periods import LOCAL_TZ
from cloud.leases.policies import load_book
from cloud.leases.renewals import OPEN_OFFER_STATES, acknowledge_reminders
from cloud.leases.roster import LeaseDesk, scope_condition
from cloud.staff.accounts import Principal, Role
from cloud.staff.audit import record
from cloud.staff.models import WebAccount

#: the most items one list returns (and one query reads)
MAX_ITEMS = 500
#: days a supervisor has to decide an offer outside its band
APPROVAL_DAYS = 2
#: days legal has to open a case handed over to it
CASE_DAYS = 7
#: who has a work queue
QUEUE_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.SUPERVISOR, Role.LEGAL})
#: who sees the overdue items of everybody in their scope
OVERSEER_ROLES = frozenset({Role.ADMIN, Role.SUPERVISOR})
_RUNNING = (LeaseStatus.ACTIVE, LeaseStatus.EXPIRING, LeaseStatus.OPEN_ENDED)


def sla_colour(due_on: date, today: date) -> str:
    """``red`` (overdue), ``amber`` (due today or tomorrow) or ``green``."""
    if due_on < today:
        return "red"
    return "amber" if due_on <= today + timedelta(days=1) else "green"


@dataclass(frozen=True)
class QueueItem:
    """One thing to do. ``id`` is ``KIND:KEY`` (e.g. ``task:17``, ``reminder:L-A1:90``);
    ``action`` is ``ack``, ``done``, ``approve`` or None; ``assignee`` the staff id."""

    id: str
    kind: str
    lease_id: str
    site_id: str
    building: str
    unit_name: str
    tenant_name: str
    due_on: date
    sla: str
    action: str | None
    assignee: str | None
    note: str
    #: the note as a code and its values, for a page to word in its reader's language
    note_code: str = ""
    note_params: dict[str, Any] = field(default_factory=dict)
    #: the deposit refund the item is about (a ``deposit`` item, a ``deposit_sla`` task):
    #: its page is the item's one-click action
    refund_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def staff_id_of(session: Session, username: str) -> str | None:
    """The staff record of an account: its ``staff_id``, else the one of the same id."""
    linked = session.scalar(select(WebAccount.staff_id).where(WebAccount.username == username))
    if linked:
        return linked
    return username if session.get(Staff, username) is not None else None


class WorkQueue(LeaseDesk):
    """The work queue of the pages, the API and the commands (see the module doc)."""

    @staticmethod
    def _may(who: Principal, roles: frozenset[Role], what: str) -> None:
        if who.role not in roles:
            raise PermissionError(f"the {who.role.value} role {what}")

    def items(self, who: Principal, *, today: date | None = None) -> list[QueueItem]:
        """``who``'s items, most urgent first (overdue, then by due day)."""
        self._may(who, QUEUE_ROLES, "has no work queue")
        day = today or self.today()
        with self.sessions() as session:
            staff = staff_id_of(session, who.username)
            found = _collect(session, who, staff, day, everybody=False)
        return _sorted(found)

    def overdue(self, who: Principal, *, today: date | None = None) -> list[QueueItem]:
        """Every overdue item in ``who``'s sites and buildings, whoever it is assigned to."""
        self._may(who, OVERSEER_ROLES, "may not see everybody's overdue items")
        day = today or self.today()
        with self.sessions() as session:
            found = _collect(session, who, None, day, everybody=True)
        return _sorted([i for i in found if i.sla == "red"])

    def ack(self, who: Principal, item_id: str) -> int:
        """Acknowledge a reminder or an escalation: the lease's open reminders are
        acknowledged and stop escalating; how many were."""
        item = self._find(who, item_id)
        if item.kind not in ("reminder", "escalation"):
            raise QueueError(f"item {item_id[:120]!r}: only reminders are acknowledged")
        now = self.clock()
        with self.sessions.begin() as session:
            n = acknowledge_reminders(session, item.lease_id, by=who.username, at=now)
            record(
                session,
                at=now,
                actor=who.username,
                action="reminder_ack",
                subject=f"lease:{item.lease_id}",
                detail=f"{item_id} ({who.origin}): {n} reminder(s) acknowledged",
            )
        return n

    def ack_due(self, who: Principal, *, today: date | None = None) -> list[str]:
        """Acknowledge every reminder and escalation in ``who``'s queue; the items done."""
        done = []
        for item in self.items(who, today=today):
            if item.kind in ("reminder", "escalation") and item.lease_id not in done:
                self.ack(who, item.id)
                done.append(item.lease_id)
        return done

    def done(self, who: Principal, item_id: str, *, today: date | None = None) -> None:
        """Close a task (one of ``who``'s, or any in scope for a supervisor or admin)."""
        item = self._find(who, item_id)
        if item.kind != "task":
            raise QueueError(f"item {item_id[:120]!r}: only tasks are marked done")
        key = item_id.partition(":")[2]
        now = self.clock()
        with self.sessions.begin() as session:
            task = session.get(LeaseTask, int(key))
            if task is None or task.closed_on is not None:
                raise QueueError(f"task {key} is done already")
            task.closed_on = today or self.today()
            record(
                session,
                at=now,
                actor=who.username,
                action="task_done",
                subject=f"lease:{item.lease_id}",
                detail=f"{item_id} {task.kind} ({who.origin}): {task.note[:200]}",
            )

    def _find(self, who: Principal, item_id: str) -> QueueItem:
        """The item in ``who``'s queue, or (supervisor, admin) anybody's in scope."""
        self._may(who, QUEUE_ROLES, "has no work queue")
        if len(item_id) > 200:
            raise UnknownRecord("no such item in your work queue")
        day = self.today()
        with self.sessions() as session:
            staff = staff_id_of(session, who.username)
            found = _collect(session, who, staff, day, everybody=who.role in OVERSEER_ROLES)
            for item in found:
                if item.id == item_id:
                    return item
            if _handled(session, who, staff, item_id):
                raise QueueError(f"item {item_id[:120]!r} is handled already")
        raise UnknownRecord(f"no item {item_id[:120]!r} in your work queue")


def _in_scope(session: Session, who: Principal, lease_id: str) -> bool:
    query = select(Lease.id).join(Unit, Unit.id == Lease.unit_id).where(Lease.id == lease_id)
    scope = scope_condition(who)
    return session.scalar(query if scope is None else query.where(scope)) is not None


def _handled(session: Session, who: Principal, staff: str | None, item_id: str) -> bool:
    """Whether ``item_id`` was ``who``'s (or, for an overseer, anybody's in scope) and is
    handled already: a task closed, a reminder acknowledged."""
    kind, _, key = item_id.partition(":")
    overseer = who.role in OVERSEER_ROLES
    if kind == "task" and key.isdigit() and len(key) < 10:
        task = session.get(LeaseTask, int(key))
        return (
            task is not None
            and task.closed_on is not None
            and _in_scope(session, who, task.lease_id)
            and (
                overseer
                or task.assignee_id == staff
                or (who.role is Role.LEGAL and task.kind == "legal_case")
            )
        )
    if kind in ("reminder", "escalation"):
        lease_id, _, offset = key.rpartition(":")
        if not offset.isdigit() or len(offset) > 5:
            return False
        row = session.get(RenewalReminder, (lease_id, kind, int(offset)))
        if row is None or not _in_scope(session, who, lease_id):
            return False
        if not (overseer or row.recipient_id == staff):
            return False
        reminder = session.get(RenewalReminder, (lease_id, "reminder", int(offset)))
        return reminder is not None and reminder.acknowledged_at is not None
    return False


def _sorted(items: list[QueueItem]) -> list[QueueItem]:
    return sorted(items, key=lambda i: (i.due_on, i.kind, i.id))[:MAX_ITEMS]


def _base(who: Principal, on: Any, *columns: Any) -> Any:
    """``columns`` with the lease (joined ``on``), its unit and its tenant's name, in scope."""
    query = (
        select(*columns, Lease, Unit, Tenant.name)
        .select_from(columns[0])
        .join(Lease, on)
        .join(Unit, Unit.id == Lease.unit_id)
        .join(Tenant, Tenant.id == Lease.tenant_id)
    )
    scope = scope_condition(who)
    return query if scope is None else query.where(scope)


def _item(
    kind: str,
    key: str,
    lease: Lease,
    unit: Unit,
    tenant: str,
    due: date,
    today: date,
    action: str | None,
    assignee: str | None,
    note: str,
    code: str = "",
    *,
    refund_id: int | None = None,
    **params: Any,
) -> QueueItem:
    return QueueItem(
        f"{kind}:{key}",
        kind,
        lease.id,
        unit.site_id,
        unit.building,
        unit.name or unit.id,
        tenant,
        due,
        sla_colour(due, today),
        action,
        assignee,
        note[:500],
        code,
        params,
        refund_id,
    )


def _refund_of(task: LeaseTask) -> int | None:
    """The refund of a ``deposit_sla`` task (its key is ``deposit-sla:REFUND:STEP``)."""
    if task.kind != "deposit_sla":
        return None
    refund = task.key.split(":")[1] if task.key.count(":") == 2 else ""
    return int(refund) if refund.isdigit() and len(refund) < 10 else None


def _tasks(session: Session, who: Principal, today: date, which: Any) -> list[QueueItem]:
    """The open tasks in ``who``'s scope (``which``: a further condition, or None)."""
    query = _base(who, Lease.id == LeaseTask.lease_id, LeaseTask).where(
        LeaseTask.closed_on.is_(None)
    )
    if which is not None:
        query = query.where(which)
    return [
        _item(
            "task",
            str(task.id),
            lease,
            unit,
            tenant,
            task.due_on,
            today,
            "done",
            task.assignee_id,
            f"{task.kind}: {task.note}",
            "task",
            task=task.kind,
            text=task.note[:400],
            note_code=task.note_code,
            note_values=task.note_params,
            refund_id=_refund_of(task),
        )
        for task, lease, unit, tenant in session.execute(query.limit(MAX_ITEMS))
    ]


def _collect(
    session: Session, who: Principal, staff: str | None, today: date, *, everybody: bool
) -> list[QueueItem]:
    """The items of ``staff`` (or, ``everybody``, of anybody) in ``who``'s scope."""
    out: list[QueueItem] = []
    mine = everybody or staff is not None
    # reminders and escalations not acknowledged
    reminder = aliased(RenewalReminder)
    if mine:
        query = _base(who, Lease.id == RenewalReminder.lease_id, RenewalReminder).where(
            RenewalReminder.kind == "reminder",
            RenewalReminder.outcome != "superseded",
            RenewalReminder.acknowledged_at.is_(None),
            Lease.status.in_(_RUNNING),
        )
        if not everybody:
            query = query.where(RenewalReminder.recipient_id == staff)
        rows = session.execute(query.limit(MAX_ITEMS)).all()
        book = load_book(session, today, {row[1].id for row in rows})
        for r, lease, unit, tenant in rows:
            within = book.policy(lease.id).acknowledge_within_days
            out.append(
                _item(
                    "reminder",
                    f"{lease.id}:{r.offset_days}",
                    lease,
                    unit,
                    tenant,
                    r.sent_on + timedelta(days=within),
                    today,
                    "ack",
                    r.recipient_id,
                    f"renewal {r.offset_days} days before {lease.end_on}"
                    + (" (priority)" if r.priority else ""),
                    "reminder_priority" if r.priority else "reminder",
                    days=r.offset_days,
                    end=lease.end_on,
                )
            )
        query = (
            _base(who, Lease.id == RenewalReminder.lease_id, RenewalReminder)
            .join(
                reminder,
                (reminder.lease_id == RenewalReminder.lease_id)
                & (reminder.offset_days == RenewalReminder.offset_days)
                & (reminder.kind == "reminder"),
            )
            .where(
                RenewalReminder.kind == "escalation",
                reminder.acknowledged_at.is_(None),
                Lease.status.in_(_RUNNING),
            )
        )
        if not everybody:
            query = query.where(RenewalReminder.recipient_id == staff)
        for r, lease, unit, tenant in session.execute(query.limit(MAX_ITEMS)):
            out.append(
                _item(
                    "escalation",
                    f"{lease.id}:{r.offset_days}",
                    lease,
                    unit,
                    tenant,
                    r.sent_on,
                    today,
                    "ack",
                    r.recipient_id,
                    f"{lease.manager_id} has not acknowledged the {r.offset_days}-day reminder",
                    "escalation",
                    manager=lease.manager_id,
                    days=r.offset_days,
                )
            )
        # open tasks
        out.extend(
            _tasks(session, who, today, None if everybody else LeaseTask.assignee_id == staff)
        )
        # deposit steps waiting, on leases they manage
        query = _base(who, Lease.id == DepositRefund.lease_id, DepositRefund)
        query = query.where(DepositRefund.state.in_(list(WAITING_FOR)))
        if not everybody:
            query = query.where(Lease.manager_id == staff)
        rows = session.execute(query.limit(MAX_ITEMS)).all()
        book = load_book(session, today, {row[1].id for row in rows})
        for refund, lease, unit, tenant in rows:
            hours = book.policy(lease.id).deposit_sla_hours
            waiting = step_due(refund, hours)
            if waiting is None:  # paid: not selected
                continue
            step, due_at = waiting
            sla = hours[step]
            due = due_at.astimezone(LOCAL_TZ).date()
            out.append(
                _item(
                    "deposit",
                    str(refund.id),
                    lease,
                    unit,
                    tenant,
                    due,
                    today,
                    None,
                    lease.manager_id,
                    f"deposit refund {refund.id}: {step} within {sla} h",
                    "deposit",
                    refund_id=refund.id,
                    refund=refund.id,
                    step=step,
                    hours=sla,
                )
            )
    # offers waiting for approval (supervisors, admins), not their own
    if who.role in OVERSEER_ROLES:
        query = _base(who, Lease.id == RenewalOffer.lease_id, RenewalOffer).where(
            RenewalOffer.approval == "pending",
            RenewalOffer.status.in_(OPEN_OFFER_STATES),
        )
        if not everybody:
            query = query.where(RenewalOffer.by != who.username)
        for offer, lease, unit, tenant in session.execute(query.limit(MAX_ITEMS)):
            out.append(
                _item(
                    "approval",
                    str(offer.id),
                    lease,
                    unit,
                    tenant,
                    offer.made_on + timedelta(days=APPROVAL_DAYS),
                    today,
                    "approve",
                    None,
                    f"offer {offer.id} by {offer.by}: {offer.flag_reason}",
                    "approval",
                    offer=offer.id,
                    by=offer.by,
                    reason=offer.flag_reason or "",
                )
            )
    # legal: cases handed over, and every open legal_case task in scope
    if who.role is Role.LEGAL or (everybody and who.role is Role.ADMIN):
        listed = {i.id for i in out}
        legal_cases = _tasks(session, who, today, LeaseTask.kind == "legal_case")
        cases = {i.lease_id for i in legal_cases}
        out.extend(i for i in legal_cases if i.id not in listed)
        query = (
            _base(who, Lease.id == Invoice.lease_id, Invoice, CollectionEvent)
            .join(CollectionEvent, CollectionEvent.invoice_id == Invoice.id)
            .where(
                CollectionEvent.action == "legal_handover",
                Invoice.status == "open",
                Invoice.paid_cents < Invoice.total_cents,
            )
        )
        for invoice, event, lease, unit, tenant in session.execute(query.limit(MAX_ITEMS)):
            if lease.id in cases:
                continue
            owed = invoice.total_cents - invoice.paid_cents
            out.append(
                _item(
                    "case",
                    invoice.id,
                    lease,
                    unit,
                    tenant,
                    event.happened_on + timedelta(days=CASE_DAYS),
                    today,
                    None,
                    None,
                    f"invoice {invoice.id} handed over on {event.happened_on}, {owed} cents owed",
                    "case",
                    invoice=invoice.id,
                    day=event.happened_on,
                    owed_cents=owed,
                )
            )
    return out
