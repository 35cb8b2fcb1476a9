"""Renewal reminders and their escalation (docs/domain.md §5), and tenants flagged for review.

Reminders go to the lease's manager at each offset (90/60/30 days by default) before the
contract end, one per (lease, offset); a day that finds several offsets due (a lease
entered late) sends the nearest and records the others as superseded. A reminder not
acknowledged within the policy's days is escalated to the manager's supervisor, once.
Tenants with late payments (the last 365 days) or open repair complaints are flagged:
their reminders are marked priority, a review task is opened, and they head the queue.
A lease whose latest move-out probability (cloud.risk scores) reaches the policy's
``risk_threshold`` is flagged too, with the model's reasons, and gets one reminder more —
``risk_lead_days`` before the first offset (120 days by default), kind ``risk`` — sent to the
manager's supervisor, the senior manager.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud.leases.models import (
    Invoice,
    Lease,
    LeaseStatus,
    LeaseTask,
    RenewalReminder,
    RepairComplaint,
    Staff,
    Tenant,
)
from cloud.leases.notices import notice, task_note
from cloud.leases.policies import PolicyBook, load_book
from cloud.notify.channels import Notification
from cloud.notify.outbox import enqueue
from cloud.risk.jobs import high_risk_leases

S = LeaseStatus
LATE_HISTORY = timedelta(days=365)


def poor_history(
    session: Session, tenant_ids: Iterable[str], today: date
) -> dict[str, list[dict[str, Any]]]:
    """Why each tenant's renewal needs a review first, as reasons
    (:func:`cloud.leases.notices.review_reasons` words them): late payments in the last 365
    days (paid after the due date, or unpaid past it; ``late_payments`` with their
    ``count``) and open repair complaints (``open_complaints``)."""
    tenants = sorted(set(tenant_ids))
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if not tenants:
        return {}
    since = today - LATE_HISTORY
    for i in range(0, len(tenants), 500):
        chunk = tenants[i : i + 500]
        late = session.scalars(
            select(Lease.tenant_id)
            .join(Invoice, Invoice.lease_id == Lease.id)
            .where(
                Lease.tenant_id.in_(chunk),
                Invoice.due_on >= since,
                Invoice.due_on < today,
                Invoice.total_cents > 0,
                or_(
                    Invoice.paid_on > Invoice.due_on,
                    (Invoice.status == "open") & (Invoice.paid_cents < Invoice.total_cents),
                ),
            )
        ).all()
        counts: dict[str, int] = defaultdict(int)
        for tenant in late:
            counts[tenant] += 1
        for tenant, n in counts.items():
            out[tenant].append({"code": "late_payments", "count": n})
        for tenant in session.scalars(
            select(RepairComplaint.tenant_id)
            .distinct()
            .where(RepairComplaint.tenant_id.in_(chunk), RepairComplaint.resolved_on.is_(None))
        ):
            out[tenant].append({"code": "open_complaints"})
    return dict(out)


def send_renewal_reminders(
    session: Session,
    today: date,
    *,
    at: datetime,
    rules: PolicyBook | None = None,
) -> int:
    """Record and queue the reminders due by ``today``; return how many were sent."""
    rules = rules or load_book(session, today)
    horizon = today + timedelta(
        days=max(max(p.reminder_offsets_days) + p.risk_lead_days for p in rules.all())
    )
    leases = session.scalars(
        select(Lease)
        .where(
            Lease.status.in_([S.ACTIVE, S.EXPIRING]), Lease.end_on <= horizon, Lease.end_on > today
        )
        .order_by(Lease.id)
    ).all()
    if not leases:
        return 0
    ids = [lease.id for lease in leases]
    known: set[tuple[str, str, int]] = set()
    for i in range(0, len(ids), 500):
        known.update(
            session.execute(
                select(
                    RenewalReminder.lease_id, RenewalReminder.kind, RenewalReminder.offset_days
                ).where(
                    RenewalReminder.lease_id.in_(ids[i : i + 500]),
                    RenewalReminder.kind.in_(["reminder", "risk"]),
                )
            )
        )
    risky = high_risk_leases(session, ids, threshold=min(p.risk_threshold for p in rules.all()))
    due_by_lease = {}
    risk_due: dict[str, int] = {}
    for lease in leases:
        policy = rules.policy(lease.id)
        due = sorted(
            o
            for o in policy.reminder_offsets_days
            if lease.end_on - timedelta(days=o) <= today and (lease.id, "reminder", o) not in known
        )
        hit = risky.get(lease.id)
        if hit is not None and hit[0] < policy.risk_threshold:
            risky.pop(lease.id)
        elif hit is not None:
            early = max(policy.reminder_offsets_days) + policy.risk_lead_days
            if (
                lease.end_on - timedelta(days=early) <= today
                and (lease.id, "risk", early) not in known
            ):
                risk_due[lease.id] = early
        if due:
            due_by_lease[lease.id] = due
    if not due_by_lease and not risk_due:
        return 0
    leases = [lease for lease in leases if lease.id in due_by_lease or lease.id in risk_due]
    staff = {s.id: s for s in session.scalars(select(Staff))}
    tenants = {
        t.id: t
        for t in session.scalars(
            select(Tenant).where(Tenant.id.in_({lease.tenant_id for lease in leases}))
        )
    }
    flagged = poor_history(session, tenants, today)
    messages: list[tuple[str, Notification]] = []
    sent = 0
    for lease in leases:
        due = due_by_lease.get(lease.id, [])
        manager = staff[lease.manager_id]
        reasons = list(flagged.get(lease.tenant_id, []))
        if lease.id in risky:
            p, why = risky[lease.id]
            reasons.append({"code": "move_out_risk", "probability": round(p, 4), "why": why})
        if lease.id in risk_due:
            offset = risk_due[lease.id]
            senior = staff.get(manager.supervisor_id or "", manager)
            key = f"renewal:{lease.id}:risk:{offset}"
            tenant = tenants[lease.tenant_id]
            subject, body = notice(
                "renewal_risk",
                senior.language,
                {**_lease_words(lease, tenant, today), "reasons": reasons, "manager": manager.name},
            )
            messages.append(
                (
                    senior.channel,
                    Notification(
                        key,
                        senior.address,
                        subject,
                        body,
                        {
                            "lease": lease.id,
                            "end_on": lease.end_on.isoformat(),
                            "offset_days": offset,
                            "priority": True,
                            "manager": manager.id,
                        },
                    ),
                )
            )
            session.add(
                RenewalReminder(
                    lease_id=lease.id,
                    kind="risk",
                    offset_days=offset,
                    sent_on=today,
                    recipient_id=senior.id,
                    outcome="queued",
                    priority=True,
                    notification_key=key,
                )
            )
            sent += 1
        for offset in due:
            if offset != due[0]:
                session.add(
                    RenewalReminder(
                        lease_id=lease.id,
                        kind="reminder",
                        offset_days=offset,
                        sent_on=today,
                        recipient_id=manager.id,
                        outcome="superseded",
                        priority=bool(reasons),
                    )
                )
                continue
            key = f"renewal:{lease.id}:reminder:{offset}"
            tenant = tenants[lease.tenant_id]
            subject, body = notice(
                "renewal_reminder_priority" if reasons else "renewal_reminder",
                manager.language,
                {**_lease_words(lease, tenant, today), "reasons": reasons},
            )
            messages.append(
                (
                    manager.channel,
                    Notification(
                        key,
                        manager.address,
                        subject,
                        body,
                        {
                            "lease": lease.id,
                            "end_on": lease.end_on.isoformat(),
                            "offset_days": offset,
                            "priority": bool(reasons),
                        },
                    ),
                )
            )
            session.add(
                RenewalReminder(
                    lease_id=lease.id,
                    kind="reminder",
                    offset_days=offset,
                    sent_on=today,
                    recipient_id=manager.id,
                    outcome="queued",
                    priority=bool(reasons),
                    notification_key=key,
                )
            )
            sent += 1
        if reasons:
            _open_review_task(session, lease, today, reasons)
    enqueue(session, messages, now=at)
    session.flush()
    return sent


def _lease_words(lease: Lease, tenant: Tenant, today: date) -> dict[str, Any]:
    """The values a renewal notice names."""
    return {
        "lease": lease.id,
        "tenant": tenant.name,
        "unit": lease.unit_id,
        "end_on": lease.end_on.isoformat(),
        "days": (lease.end_on - today).days,
    }


def _open_review_task(
    session: Session, lease: Lease, today: date, reasons: list[dict[str, Any]]
) -> None:
    key = f"renewal-review:{lease.id}:{lease.end_on.isoformat()}"
    if session.scalars(select(LeaseTask.id).where(LeaseTask.key == key)).first() is None:
        english, code, values = task_note("renewal_review", {"reasons": reasons})
        session.add(
            LeaseTask(
                key=key,
                kind="renewal_review",
                lease_id=lease.id,
                assignee_id=lease.manager_id,
                opened_on=today,
                due_on=today + timedelta(days=7),
                note=english,
                note_code=code,
                note_params=values,
            )
        )


def escalate_unacknowledged(
    session: Session,
    today: date,
    *,
    at: datetime,
    rules: PolicyBook | None = None,
) -> int:
    """Escalate reminders not acknowledged in time to the manager's supervisor, once per
    (lease, offset); return how many were escalated."""
    rules = rules or load_book(session, today)
    rows = session.execute(
        select(RenewalReminder, Lease)
        .join(Lease, Lease.id == RenewalReminder.lease_id)
        .where(
            RenewalReminder.kind == "reminder",
            RenewalReminder.outcome != "superseded",
            RenewalReminder.acknowledged_at.is_(None),
            Lease.status.in_([S.ACTIVE, S.EXPIRING, S.OPEN_ENDED]),
        )
        .order_by(RenewalReminder.lease_id, RenewalReminder.offset_days)
    ).all()
    due = [
        (r, lease)
        for r, lease in rows
        if r.sent_on + timedelta(days=rules.policy(lease.id).acknowledge_within_days) <= today
    ]
    if not due:
        return 0
    done = set(
        session.execute(
            select(RenewalReminder.lease_id, RenewalReminder.offset_days).where(
                RenewalReminder.kind == "escalation",
                RenewalReminder.lease_id.in_({lease.id for _, lease in due}),
            )
        )
    )
    staff = {s.id: s for s in session.scalars(select(Staff))}
    messages = []
    for reminder, lease in due:
        if (lease.id, reminder.offset_days) in done:
            continue
        manager = staff[lease.manager_id]
        boss = staff.get(manager.supervisor_id or "", manager)
        key = f"renewal:{lease.id}:escalation:{reminder.offset_days}"
        messages.append(
            (
                boss.channel,
                Notification(
                    key,
                    boss.address,
                    *notice(
                        "renewal_escalation",
                        boss.language,
                        {
                            "manager": manager.name,
                            "lease": lease.id,
                            "unit": lease.unit_id,
                            "end_on": lease.end_on.isoformat(),
                            "offset": reminder.offset_days,
                            "sent_on": reminder.sent_on.isoformat(),
                        },
                    ),
                    {"lease": lease.id, "offset_days": reminder.offset_days, "manager": manager.id},
                ),
            )
        )
        session.add(
            RenewalReminder(
                lease_id=lease.id,
                kind="escalation",
                offset_days=reminder.offset_days,
                sent_on=today,
                recipient_id=boss.id,
                outcome="queued",
                priority=reminder.priority,
                notification_key=key,
            )
        )
    enqueue(session, messages, now=at)
    session.flush()
    return len(messages)
