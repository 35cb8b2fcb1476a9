"""Late fees and the collections ladder (docs/domain.md §5).

Late fee on an invoice (pure, :func:`late_fee`): every day d after the grace period
(d > due + grace days) costs ``daily_rate`` × the part of the invoice's base still unpaid at
the end of d; the sum is capped at ``cap_rate`` × base and rounded half up once. The base
is the invoice's total without the late fees it carries (no fee on fees). Billing puts what
accrued since the last invoice on the next one.

Collections ladder (:func:`run_collections`), counted from the due date T of an invoice with
money still owed, its rungs from the lease's policy (:mod:`cloud.leases.policies`, the
``ladder`` field); by default T+1 a reminder to the tenant (their channel), T+3 an internal
task for the manager, T+7 a call task, T+15 the case handed to legal (``legal_handover``: a
``legal_case`` task, and a notice to the supervisor). An ``escalation`` rung notifies the
manager's supervisor and opens an ``escalation`` task for them.
Each is one event per (invoice, step) with its channel and outcome; a day's run creates the
steps that are due and not yet there, so running it twice creates nothing the second time,
and a paid invoice climbs no further.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from cloud.leases.models import CollectionEvent, Invoice, Lease, LeaseTask, Staff, Tenant
from cloud.leases.money import round_half_up
from cloud.leases.notices import note_text, notice, task_note
from cloud.leases.policies import PolicyBook, load_book
from cloud.leases.terms import DEFAULT_LADDER, LadderRung, LateFeePolicy
from cloud.notify.channels import Notification
from cloud.notify.outbox import enqueue


def late_fee(
    base_cents: int,
    due_on: date,
    payments: Sequence[tuple[date, int]],
    *,
    through: date,
    policy: LateFeePolicy,
) -> int:
    """Late fee [cents] accrued on an invoice for the days before ``through``.

    ``payments`` are (day, cents) settled on the invoice; a payment counts for its own day.
    """
    if base_cents <= 0:
        return 0
    first_late = due_on + timedelta(days=policy.grace_days + 1)
    if through <= first_late:
        return 0
    paid_by: dict[date, int] = {}
    for day, cents in payments:
        paid_by[day] = paid_by.get(day, 0) + cents
    unpaid = base_cents - sum(c for d, c in paid_by.items() if d < first_late)
    unpaid_days = 0  # Σ unpaid cents × days
    day = first_late
    for change in sorted(d for d in paid_by if first_late <= d < through):
        unpaid_days += max(unpaid, 0) * (change - day).days
        unpaid -= paid_by[change]
        day = change
    unpaid_days += max(unpaid, 0) * (through - day).days
    fee = unpaid_days * policy.daily_rate
    cap = Decimal(base_cents) * policy.cap_rate
    return round_half_up(min(fee, cap))


LadderStep = LadderRung
#: The rungs that go to the manager's supervisor: the task's kind, the notice's subject and
#: text.
#: rung action → (the supervisor's task kind, the notice's code in cloud.leases.notices)
_TO_SUPERVISOR = {
    "legal_handover": ("legal_case", "legal_handover"),
    "escalation": ("escalation", "escalation"),
}
#: The default ladder (:data:`cloud.leases.terms.DEFAULT_LADDER`); a lease's own is its
#: policy's ``ladder``.
LADDER: tuple[LadderRung, ...] = DEFAULT_LADDER


def run_collections(
    session: Session, today: date, *, at: datetime, rules: PolicyBook | None = None
) -> int:
    """Create the ladder's steps due by ``today`` for every invoice still owed, each lease
    climbing its policy's ladder on ``today``; return how many events were created. ``at``
    stamps the outbox rows; ``rules``: the policies, if loaded already."""
    first_step = 1  # no ladder has a rung earlier than T+1
    manager = aliased(Staff)
    rows = session.execute(
        select(Invoice, Lease, Tenant, manager)
        .join(Lease, Lease.id == Invoice.lease_id)
        .join(Tenant, Tenant.id == Lease.tenant_id)
        .join(manager, manager.id == Lease.manager_id)
        .where(
            Invoice.status == "open",
            Invoice.total_cents > Invoice.paid_cents,
            Invoice.due_on <= today - timedelta(days=first_step),
        )
        .order_by(Invoice.due_on, Invoice.id)
    ).all()
    if not rows:
        return 0
    ids = [r[0].id for r in rows]
    done: set[tuple[str, int]] = set()
    for i in range(0, len(ids), 500):
        done.update(
            session.execute(
                select(CollectionEvent.invoice_id, CollectionEvent.step).where(
                    CollectionEvent.invoice_id.in_(ids[i : i + 500])
                )
            )
        )
    supervisors = {s.id: s for s in session.scalars(select(Staff))}
    rules = rules or load_book(session, today, {r[1].id for r in rows})
    messages: list[tuple[str, Notification]] = []
    created = 0
    for invoice, lease, tenant, mgr in rows:
        owed = invoice.total_cents - invoice.paid_cents
        for step in rules.policy(lease.id).ladder:
            due = invoice.due_on + timedelta(days=step.days)
            if due > today or (invoice.id, step.days) in done:
                continue
            key = f"collections:{invoice.id}:{step.days}"
            owed_values = {
                "invoice": invoice.id,
                "unit": lease.unit_id,
                "tenant": tenant.name,
                "owed_cents": owed,
                "due_on": invoice.due_on.isoformat(),
            }
            what, code, values = task_note("owed", owed_values)
            channel, recipient, outcome, note = "task", mgr.id, "task_opened", None
            if step.action == "reminder":
                channel, recipient, outcome = tenant.channel, tenant.address, "queued"
                subject, body = notice(
                    "payment_reminder",
                    tenant.language,
                    {**owed_values, "name": tenant.name},
                )
                note = Notification(
                    key,
                    tenant.address,
                    subject,
                    body,
                    {
                        "invoice": invoice.id,
                        "owed_cents": owed,
                        "due_on": invoice.due_on.isoformat(),
                    },
                )
            elif step.action in _TO_SUPERVISOR:
                boss = supervisors.get(mgr.supervisor_id or "", mgr)
                channel, recipient, outcome = boss.channel, boss.address, "queued"
                task, notice_code = _TO_SUPERVISOR[step.action]
                in_words = note_text(code, values, boss.language, fallback=what)
                subject, body = notice(
                    notice_code,
                    boss.language,
                    {"invoice": invoice.id, "days": step.days, "what": in_words},
                )
                note = Notification(
                    key,
                    boss.address,
                    subject,
                    body,
                    {"invoice": invoice.id, "owed_cents": owed, "lease": lease.id},
                )
                session.add(_task(key, task, lease.id, boss.id, today, (what, code, values)))
            else:
                kind = "collections" if step.action == "internal_task" else "call"
                session.add(_task(key, kind, lease.id, mgr.id, today, (what, code, values)))
            if note is not None:
                messages.append((channel, note))
            session.add(
                CollectionEvent(
                    invoice_id=invoice.id,
                    step=step.days,
                    action=step.action,
                    due_on=due,
                    happened_on=today,
                    channel=channel,
                    recipient=recipient,
                    outcome=outcome,
                    notification_key=note.key if note else None,
                )
            )
            created += 1
    enqueue(session, messages, now=at)
    session.flush()
    return created


def _task(
    key: str, kind: str, lease_id: str, assignee: str, today: date, note: tuple[str, str, str]
) -> LeaseTask:
    """A task due tomorrow; ``note``: (English, code, values) as :func:`task_note` gives."""
    english, code, values = note
    return LeaseTask(
        key=key,
        kind=kind,
        lease_id=lease_id,
        assignee_id=assignee,
        opened_on=today,
        due_on=today + timedelta(days=1),
        note=english,
        note_code=code,
        note_params=values,
    )
