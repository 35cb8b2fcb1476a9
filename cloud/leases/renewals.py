"""Renewals (DOMAIN.md §5): expiry, auto-renewal, reminders and their escalation, price
suggestions inside a band consistent across comparable units, offers, the review queue.

Expiry is judged on the later of the contract end and the paid-through date (a quarterly
payer runs past the contract date). The daily :func:`process_expiries` moves leases along:
renewal successors start, ``active`` → ``expiring`` at the first reminder offset before the
end, and at the end an ``expiring`` lease is auto-renewed when its contract says so and a
payment covering the next cycle arrived within the window (30 days) before the end —
unless arrears block it — or becomes ``open_ended`` once its expiry has passed.

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

Price suggestion for comparable units (same site, building and unit type): the group's
median current rent per m² raised by the middle of the band is the target; each lease's
suggestion is the target × its area, clamped into [current × (1 + low), current × (1 +
high)], rounded half up to the cent. Identical units at the same rent get the same price,
and a gap between identical units narrows at each renewal instead of being carried on.
An offer outside its band is accepted but flagged with the reason.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.errors import IllegalTransition, RenewalBlocked, UnknownRecord
from cloud.leases.lifecycle import (
    activate_successor,
    get_lease,
    mark_expiring,
    mark_open_ended,
    renew,
)
from cloud.leases.models import (
    Invoice,
    Lease,
    LeaseStatus,
    LeaseTask,
    RenewalOffer,
    RenewalReminder,
    RentStepRow,
    RepairComplaint,
    Staff,
    Tenant,
    UnitProfile,
)
from cloud.leases.money import cny, round_half_up, scale_cents
from cloud.leases.payments import account_of, arrears, covering_payment_between, paid_through
from cloud.leases.reference import policies, policy_for
from cloud.leases.schedule import RentStep, rent_in_force
from cloud.leases.terms import LeasePolicy
from cloud.notify.channels import Notification
from cloud.notify.outbox import enqueue
from cloud.risk.jobs import high_risk_leases

S = LeaseStatus
LATE_HISTORY = timedelta(days=365)


def effective_expiry(session: Session, lease: Lease) -> date:
    """The later of the contract end and the paid-through date of the payments made up to
    the contract end."""
    through = paid_through(session, lease, as_of=lease.end_on)
    return max(lease.end_on, through) if through else lease.end_on


@dataclass(frozen=True)
class ExpiryReport:
    """What :func:`process_expiries` did, as lease ids."""

    started: tuple[str, ...] = ()
    expiring: tuple[str, ...] = ()
    auto_renewed: tuple[str, ...] = ()
    open_ended: tuple[str, ...] = ()
    blocked: tuple[str, ...] = ()


def process_expiries(
    session: Session,
    today: date,
    *,
    by: str = "daily",
    rules: Mapping[str | None, LeasePolicy] | None = None,
) -> ExpiryReport:
    """Start due renewal successors, mark leases expiring, auto-renew or open-end expired
    ones (see the module doc). ``rules``: the policies, if loaded already."""
    rules = rules or policies(session)
    started = []
    for lease in session.scalars(
        select(Lease)
        .where(
            Lease.status == S.SIGNED, Lease.renewed_from_id.is_not(None), Lease.start_on <= today
        )
        .order_by(Lease.id)
    ):
        activate_successor(session, lease, today=today, by=by)
        started.append(lease.id)
    expiring = []
    horizon = today + timedelta(days=max(max(p.reminder_offsets_days) for p in rules.values()))
    for lease in session.scalars(
        select(Lease).where(Lease.status == S.ACTIVE, Lease.end_on <= horizon).order_by(Lease.id)
    ):
        policy = rules.get(lease.policy_id, rules[None])
        if lease.end_on - timedelta(days=policy.expiring_window_days) <= today:
            mark_expiring(session, lease, today=today, by=by)
            expiring.append(lease.id)
    renewed, open_ended, blocked = [], [], []
    for lease in session.scalars(
        select(Lease).where(Lease.status == S.EXPIRING, Lease.end_on <= today).order_by(Lease.id)
    ):
        policy = rules.get(lease.policy_id, rules[None])
        if lease.auto_renew:
            window = lease.end_on - timedelta(days=policy.auto_renew_window_days)
            paid_on = covering_payment_between(session, lease, window, lease.end_on)
            if paid_on is not None:
                owed = arrears(session, account_of(session, lease.id).id, today)
                if owed <= policy.arrears_block_cents:
                    renew(
                        session,
                        lease.id,
                        monthly_cents=None,
                        today=today,
                        by=by,
                        start_on=lease.end_on,
                        reason=f"auto-renewed: contract clause, covering payment on {paid_on}",
                    )
                    renewed.append(lease.id)
                    continue
                blocked.append(lease.id)
        expiry = effective_expiry(session, lease)
        if today >= expiry:
            mark_open_ended(session, lease, today=today, expiry=expiry, by=by)
            open_ended.append(lease.id)
    session.flush()
    return ExpiryReport(
        tuple(started), tuple(expiring), tuple(renewed), tuple(open_ended), tuple(blocked)
    )


def poor_history(session: Session, tenant_ids: Iterable[str], today: date) -> dict[str, list[str]]:
    """Why each tenant's renewal needs a review first: late payments in the last 365 days
    (paid after the due date, or unpaid past it) and open repair complaints."""
    tenants = sorted(set(tenant_ids))
    out: dict[str, list[str]] = defaultdict(list)
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
            out[tenant].append(f"{n} late payment(s) in the last 365 days")
        for tenant in session.scalars(
            select(RepairComplaint.tenant_id)
            .distinct()
            .where(RepairComplaint.tenant_id.in_(chunk), RepairComplaint.resolved_on.is_(None))
        ):
            out[tenant].append("open repair complaint(s)")
    return dict(out)


def send_renewal_reminders(
    session: Session,
    today: date,
    *,
    at: datetime,
    rules: Mapping[str | None, LeasePolicy] | None = None,
) -> int:
    """Record and queue the reminders due by ``today``; return how many were sent."""
    rules = rules or policies(session)
    horizon = today + timedelta(
        days=max(max(p.reminder_offsets_days) + p.risk_lead_days for p in rules.values())
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
    risky = high_risk_leases(session, ids, threshold=min(p.risk_threshold for p in rules.values()))
    due_by_lease = {}
    risk_due: dict[str, int] = {}
    for lease in leases:
        policy = rules.get(lease.policy_id, rules[None])
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
            reasons.append(f"move-out risk {p:.0%}" + (f" ({'; '.join(why)})" if why else ""))
        if lease.id in risk_due:
            offset = risk_due[lease.id]
            senior = staff.get(manager.supervisor_id or "", manager)
            key = f"renewal:{lease.id}:risk:{offset}"
            tenant = tenants[lease.tenant_id]
            messages.append(
                (
                    senior.channel,
                    Notification(
                        key,
                        senior.address,
                        f"[move-out risk] Lease {lease.id} ends on {lease.end_on}",
                        f"Lease {lease.id} of {tenant.name} for unit {lease.unit_id} ends on "
                        f"{lease.end_on} ({(lease.end_on - today).days} days) and is at high risk "
                        f"of moving out: {'; '.join(reasons)}. {manager.name} manages it; please "
                        "plan the retention now.",
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
            flag = f" PRIORITY REVIEW: {'; '.join(reasons)}." if reasons else ""
            messages.append(
                (
                    manager.channel,
                    Notification(
                        key,
                        manager.address,
                        ("[priority] " if reasons else "")
                        + f"Lease {lease.id} ends on {lease.end_on}",
                        f"Lease {lease.id} of {tenant.name} for unit {lease.unit_id} ends on "
                        f"{lease.end_on} ({(lease.end_on - today).days} days). Please prepare the "
                        f"renewal and acknowledge this reminder.{flag}",
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


def _open_review_task(session: Session, lease: Lease, today: date, reasons: list[str]) -> None:
    key = f"renewal-review:{lease.id}:{lease.end_on.isoformat()}"
    if session.scalars(select(LeaseTask.id).where(LeaseTask.key == key)).first() is None:
        session.add(
            LeaseTask(
                key=key,
                kind="renewal_review",
                lease_id=lease.id,
                assignee_id=lease.manager_id,
                opened_on=today,
                due_on=today + timedelta(days=7),
                note="; ".join(reasons),
            )
        )


def escalate_unacknowledged(
    session: Session,
    today: date,
    *,
    at: datetime,
    rules: Mapping[str | None, LeasePolicy] | None = None,
) -> int:
    """Escalate reminders not acknowledged in time to the manager's supervisor, once per
    (lease, offset); return how many were escalated."""
    rules = rules or policies(session)
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
        if r.sent_on
        + timedelta(days=rules.get(lease.policy_id, rules[None]).acknowledge_within_days)
        <= today
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
                    f"Escalation: renewal of lease {lease.id} not acknowledged",
                    f"{manager.name} has not acknowledged the {reminder.offset_days}-day renewal "
                    f"reminder of lease {lease.id} (unit {lease.unit_id}, ends {lease.end_on}) "
                    f"sent on {reminder.sent_on}.",
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


def acknowledge_reminders(session: Session, lease_id: str, *, by: str, at: datetime) -> int:
    """The manager acts on the lease's renewal: every open reminder is acknowledged."""
    rows = session.scalars(
        select(RenewalReminder).where(
            RenewalReminder.lease_id == lease_id,
            RenewalReminder.kind == "reminder",
            RenewalReminder.acknowledged_at.is_(None),
        )
    ).all()
    for r in rows:
        r.acknowledged_at, r.acknowledged_by = at, by
    session.flush()
    return len(rows)


@dataclass(frozen=True)
class PriceSuggestion:
    """A renewal price [cents per month] for a lease, with its band and the comparable
    group's target [cents per m² per month]."""

    lease_id: str
    group: tuple[str, str, str]
    area_m2: Decimal
    current_cents: int
    target_per_m2: Decimal
    suggested_cents: int
    band_low_cents: int
    band_high_cents: int


def suggest_prices(
    session: Session, today: date, lease_ids: Iterable[str] | None = None
) -> dict[str, PriceSuggestion]:
    """Suggestions for running standard leases (all, or those of ``lease_ids``), each from
    its comparable group (same site, building, unit type); see the module doc."""
    rows = session.execute(
        select(
            Lease.id,
            Lease.policy_id,
            Unit.site_id,
            Unit.building,
            UnitProfile.unit_type,
            Unit.area_m2,
        )
        .join(Unit, Unit.id == Lease.unit_id)
        .join(UnitProfile, UnitProfile.unit_id == Lease.unit_id)
        .where(Lease.kind == "standard", Lease.status.in_([S.ACTIVE, S.EXPIRING, S.OPEN_ENDED]))
    ).all()
    steps: dict[str, list[RentStep]] = defaultdict(list)
    for lease_id, starts_on, cents, free in session.execute(
        select(
            RentStepRow.lease_id, RentStepRow.starts_on, RentStepRow.monthly_cents, RentStepRow.free
        )
        .where(RentStepRow.lease_id.in_([r[0] for r in rows]))
        .order_by(RentStepRow.lease_id, RentStepRow.starts_on)
    ):
        steps[lease_id].append(RentStep(starts_on, cents, free))
    rules = policies(session)
    groups: dict[tuple[str, str, str], list[tuple[str, Decimal, int, LeasePolicy]]] = defaultdict(
        list
    )
    for lease_id, policy_id, site, building, unit_type, area in rows:
        current = rent_in_force(steps[lease_id], today)
        if current > 0 and area > 0:
            groups[(site, building, unit_type)].append(
                (lease_id, Decimal(area), current, rules.get(policy_id, rules[None]))
            )
    wanted = set(lease_ids) if lease_ids is not None else None
    out = {}
    for group, members in groups.items():
        median = Decimal(statistics.median(Decimal(c) / a for _, a, c, _ in members))
        for lease_id, area, current, policy in members:
            if wanted is not None and lease_id not in wanted:
                continue
            low, high = policy.price_band
            target = median * (1 + (low + high) / 2)
            band_low, band_high = scale_cents(current, 1 + low), scale_cents(current, 1 + high)
            suggested = min(max(round_half_up(target * area), band_low), band_high)
            out[lease_id] = PriceSuggestion(
                lease_id, group, area, current, target, suggested, band_low, band_high
            )
    return out


def make_offer(
    session: Session, lease_id: str, offered_cents: int, *, by: str, today: date, at: datetime
) -> RenewalOffer:
    """Record a renewal offer at ``offered_cents`` per month, flagged when outside the band;
    refused while arrears block the renewal. Acts on (acknowledges) the reminders."""
    lease = get_lease(session, lease_id)
    if lease.status not in (S.ACTIVE, S.EXPIRING, S.OPEN_ENDED):
        raise IllegalTransition(
            f"lease {lease.id!r} is {lease.status}; offers are made for running leases"
        )
    policy = policy_for(session, lease.policy_id)
    owed = arrears(session, account_of(session, lease.id).id, today)
    if owed > policy.arrears_block_cents:
        raise RenewalBlocked(
            f"lease {lease.id!r}: arrears {owed} cents are above the "
            f"{policy.arrears_block_cents} cents that block a renewal"
        )
    suggestion = suggest_prices(session, today, [lease.id]).get(lease.id)
    if suggestion is None:
        raise UnknownRecord(
            f"lease {lease.id!r}: no price suggestion (a standard lease with "
            "a unit profile, an area and a rent in force is needed)"
        )
    flagged = not suggestion.band_low_cents <= offered_cents <= suggestion.band_high_cents
    reason = (
        (
            f"offered {cny(offered_cents)} is outside the band {cny(suggestion.band_low_cents)}"
            f" … {cny(suggestion.band_high_cents)} (current {cny(suggestion.current_cents)}, "
            f"suggested {cny(suggestion.suggested_cents)})"
        )
        if flagged
        else ""
    )
    offer = RenewalOffer(
        lease_id=lease.id,
        made_on=today,
        by=by,
        current_cents=suggestion.current_cents,
        suggested_cents=suggestion.suggested_cents,
        band_low_cents=suggestion.band_low_cents,
        band_high_cents=suggestion.band_high_cents,
        offered_cents=offered_cents,
        flagged=flagged,
        flag_reason=reason,
        status="open",
    )
    session.add(offer)
    acknowledge_reminders(session, lease.id, by=by, at=at)
    session.flush()
    return offer


def accept_offer(session: Session, offer_id: int, *, by: str, today: date) -> Lease:
    """The tenant accepts: the lease is renewed at the offered rent; returns the successor."""
    offer = session.get(RenewalOffer, offer_id)
    if offer is None or offer.status != "open":
        raise UnknownRecord(f"renewal offer {offer_id} does not exist or is not open")
    successor = renew(
        session,
        offer.lease_id,
        monthly_cents=offer.offered_cents,
        today=today,
        by=by,
        reason=f"offer {offer.id} accepted",
    )
    offer.status, offer.successor_id = "accepted", successor.id
    session.flush()
    return successor


@dataclass(frozen=True)
class ReviewItem:
    """A lease up for renewal in the review queue; ``reasons`` make it a priority."""

    lease_id: str
    tenant_id: str
    end_on: date
    priority: bool
    reasons: tuple[str, ...]


def review_queue(session: Session, today: date) -> list[ReviewItem]:
    """Expiring and open-ended leases, tenants with poor history first, then by end date."""
    leases = session.scalars(
        select(Lease).where(Lease.status.in_([S.EXPIRING, S.OPEN_ENDED]))
    ).all()
    flagged = poor_history(session, [lease.tenant_id for lease in leases], today)
    items = [
        ReviewItem(
            lease.id,
            lease.tenant_id,
            lease.end_on,
            bool(flagged.get(lease.tenant_id)),
            tuple(flagged.get(lease.tenant_id, ())),
        )
        for lease in leases
    ]
    return sorted(items, key=lambda i: (not i.priority, i.end_on, i.lease_id))
