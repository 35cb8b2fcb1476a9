"""The lease state machine, its audit, and what each change does elsewhere.

States (docs/domain.md §5)::

    draft → signed → active → expiring → renewed | terminated
                       │          └────→ open_ended → renewed | terminated
                       └→ terminated (early)      signed → terminated (withdrawn)

``open_ended``: the contract end (judged with the paid-through date) has passed and the
tenant stays (Civil Code art. 734). ``renewed`` and ``terminated`` are final. Any other move
raises :class:`IllegalTransition` — also a status assigned directly on the ORM object
(checked before every update, see :mod:`cloud.leases.models`). Every change, creation
included, writes a :class:`LeaseTransition`: who, when, the fields before and after, the
reason and the effects.

Effects (event rules):
- handover → rent plan compiled (free rent anchored on the handover when the contract says
  so), the unit's meters bound to the tenant (an occupancy segment of the apportionment),
  statement access granted;
- termination → billing stops at the move-out day (rent billed in advance beyond it becomes
  credit), the unit's meters unbound from the tenant (its occupancy segment closed), the
  tenant's statement access revoked;
- renewal → a successor lease from the old one's end, the old one's billing stops there.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.models import OccupancySegment, TreeNode, Unit
from cloud.leases.billing import credit_rent_after
from cloud.leases.errors import IllegalTransition, RenewalBlocked, TermsError, UnknownRecord
from cloud.leases.models import (
    ALLOWED,
    Lease,
    LeaseStatus,
    LeaseTransition,
    Staff,
    StatementAccess,
    Tenant,
)
from cloud.leases.models import LeaseStatus as S
from cloud.leases.money import round_half_up
from cloud.leases.payments import account_of, arrears
from cloud.leases.periods import add_months
from cloud.leases.plans import schedule_doc, store_plan, stored_steps
from cloud.leases.policies import policy_of
from cloud.leases.reference import policy_for
from cloud.leases.schedule import compile_plan, rent_in_force
from cloud.leases.terms import FixedRent, LeaseTerms
from edge.wire import Clock, utc_now

RUNNING = (S.ACTIVE, S.EXPIRING, S.OPEN_ENDED)
_AUDITED = (
    "status",
    "signed_on",
    "start_on",
    "end_on",
    "handover_on",
    "rent_from",
    "ended_on",
    "renewed_from_id",
    "parent_id",
    "deposit_cents",
    "plan_known_until",
)


def _snapshot(lease: Lease) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _AUDITED:
        value = getattr(lease, name)
        out[name] = value.isoformat() if isinstance(value, date) else value
    return out


def snapshot(lease: Lease) -> dict[str, Any]:
    """The lease's audited fields (dates as ISO text), as its transitions keep them."""
    return _snapshot(lease)


def get_lease(session: Session, lease_id: str) -> Lease:
    lease = session.get(Lease, lease_id)
    if lease is None:
        raise UnknownRecord(f"lease {lease_id!r} does not exist")
    return lease


def transition(
    session: Session,
    lease: Lease,
    to: LeaseStatus,
    *,
    by: str,
    on: date,
    reason: str = "",
    changes: dict[str, Any] | None = None,
    clock: Clock = utc_now,
) -> LeaseTransition:
    """Move ``lease`` to ``to`` (applying ``changes`` to its fields), audited; raises
    IllegalTransition when its state does not lead there."""
    allowed = ALLOWED[lease.status]
    if to not in allowed:
        raise IllegalTransition(
            f"lease {lease.id!r} is {lease.status}; it can become "
            f"{', '.join(sorted(allowed)) or 'nothing (final state)'}, not {to.value}"
        )
    before = _snapshot(lease)
    for name, value in (changes or {}).items():
        setattr(lease, name, value)
    lease.status = to.value
    record = LeaseTransition(
        lease_id=lease.id,
        from_status=before["status"],
        to_status=to.value,
        day=on,
        at=clock(),
        by=by,
        reason=reason,
        before=before,
        after=_snapshot(lease),
        effects=[],
    )
    session.add(record)
    session.flush()
    return record


def _require_references(session: Session, terms: LeaseTerms) -> None:
    """The tenant, unit and manager ``terms`` name are registered (UnknownRecord if not)."""
    for model, key, what in (
        (Tenant, terms.tenant_id, "tenant"),
        (Unit, terms.unit_id, "unit"),
        (Staff, terms.manager_id, "manager"),
    ):
        if session.get(model, key) is None:
            raise UnknownRecord(f"lease {terms.id!r}: {what} {key!r} is not registered")


def create_lease(
    session: Session, terms: LeaseTerms, *, by: str, today: date, clock: Clock = utc_now
) -> Lease:
    """A new lease in ``draft`` from validated terms; the deposit in months is taken of the
    first month's rent [cents]."""
    _require_references(session, terms)
    if session.get(Lease, terms.id) is not None:
        raise TermsError(f"lease {terms.id!r} exists already")
    if terms.parent_id is not None:
        parent = get_lease(session, terms.parent_id)
        if parent.parent_id is not None:
            raise TermsError(
                f"lease {terms.id!r}: parent {parent.id!r} is itself a child of "
                f"{parent.parent_id!r}; sub-accounts are one level deep"
            )
    policy_for(session, terms.policy_id)
    deposit = deposit_cents(terms)
    lease = Lease(
        id=terms.id,
        tenant_id=terms.tenant_id,
        unit_id=terms.unit_id,
        manager_id=terms.manager_id,
        parent_id=terms.parent_id,
        policy_id=terms.policy_id,
        kind=terms.kind,
        status=S.DRAFT.value,
        start_on=terms.start_on,
        end_on=terms.end_on,
        cycle_months=terms.cycle_months,
        due_days=terms.due_days,
        auto_renew=terms.auto_renew,
        renewal_term_months=terms.renewal_term_months,
        deposit_cents=deposit,
        schedule=schedule_doc(terms.rent, terms.free_rent),
        created_at=clock(),
    )
    session.add(lease)
    session.flush()
    session.add(
        LeaseTransition(
            lease_id=lease.id,
            from_status="",
            to_status=S.DRAFT.value,
            day=today,
            at=clock(),
            by=by,
            reason="created",
            before={},
            after=_snapshot(lease),
            effects=[],
        )
    )
    session.flush()
    return lease


def deposit_cents(terms: LeaseTerms) -> int:
    """The deposit of ``terms`` [cents]: the amount given, or the months given of the first
    month's rent (rounded half up to the cent)."""
    if terms.deposit.cents is not None:
        return terms.deposit.cents
    first = compile_plan(terms.rent, [], start=terms.start_on, end=terms.end_on).steps
    return round_half_up(Decimal(first[0].monthly_cents) * (terms.deposit.months or Decimal(0)))


def update_draft(session: Session, terms: LeaseTerms) -> Lease:
    """Replace the terms of a lease still in ``draft`` (nothing signed yet) with ``terms``;
    IllegalTransition for a lease past draft (its terms change only by renewal or
    termination). The caller audits the change."""
    lease = get_lease(session, terms.id)
    if lease.status != S.DRAFT:
        raise IllegalTransition(
            f"lease {lease.id!r} is {lease.status}; the terms of a signed contract change "
            "only by renewal or termination"
        )
    _require_references(session, terms)
    policy_for(session, terms.policy_id)
    lease.tenant_id, lease.unit_id, lease.manager_id = (
        terms.tenant_id,
        terms.unit_id,
        terms.manager_id,
    )
    lease.parent_id, lease.policy_id, lease.kind = terms.parent_id, terms.policy_id, terms.kind
    lease.start_on, lease.end_on = terms.start_on, terms.end_on
    lease.cycle_months, lease.due_days = terms.cycle_months, terms.due_days
    lease.auto_renew, lease.renewal_term_months = terms.auto_renew, terms.renewal_term_months
    lease.deposit_cents = deposit_cents(terms)
    lease.schedule = schedule_doc(terms.rent, terms.free_rent)
    session.flush()
    return lease


def sign(
    session: Session,
    lease_id: str,
    *,
    on: date,
    by: str,
    how: str = "",
    clock: Clock = utc_now,
) -> Lease:
    """draft → signed on ``on``; ``how`` (paper, e-sign ...) goes in the transition's reason."""
    lease = get_lease(session, lease_id)
    transition(
        session,
        lease,
        S.SIGNED,
        by=by,
        on=on,
        reason=f"signed ({how})" if how else "signed",
        changes={"signed_on": on},
        clock=clock,
    )
    return lease


def hand_over(
    session: Session, lease_id: str, *, on: date, by: str, clock: Clock = utc_now
) -> Lease:
    """signed → active: the keys are handed over on ``on``; rent is due from the later of
    the start and the handover. Compiles the rent plan, binds the unit's meters to the
    tenant and grants statement access."""
    lease = get_lease(session, lease_id)
    record = transition(
        session,
        lease,
        S.ACTIVE,
        by=by,
        on=on,
        reason="handover",
        changes={"handover_on": on, "rent_from": max(on, lease.start_on)},
        clock=clock,
    )
    plan = store_plan(session, lease)
    record.effects = [
        f"rent plan: {len(plan.steps)} step(s)",
        *_bind_meters(session, lease, lease.rent_from or on),
        _grant_access(session, lease, on),
    ]
    record.after = _snapshot(lease)
    session.flush()
    return lease


def mark_expiring(
    session: Session, lease: Lease, *, today: date, by: str = "daily", clock: Clock = utc_now
) -> None:
    """active → expiring (the first renewal reminder's offset before the end has come)."""
    transition(
        session,
        lease,
        S.EXPIRING,
        by=by,
        on=today,
        reason=f"contract ends on {lease.end_on}",
        clock=clock,
    )


def mark_open_ended(
    session: Session,
    lease: Lease,
    *,
    today: date,
    expiry: date,
    by: str = "daily",
    clock: Clock = utc_now,
) -> None:
    """expiring → open_ended: expired on ``expiry`` (contract end or paid-through, the later)
    and the tenant stays."""
    transition(
        session,
        lease,
        S.OPEN_ENDED,
        by=by,
        on=today,
        reason=f"expired on {expiry} (contract end {lease.end_on}); tenant stays",
        clock=clock,
    )


def renew(
    session: Session,
    lease_id: str,
    *,
    monthly_cents: int | None,
    today: date,
    by: str,
    term_months: int | None = None,
    start_on: date | None = None,
    reason: str = "renewed",
    clock: Clock = utc_now,
) -> Lease:
    """expiring | open_ended → renewed, with a successor lease from ``start_on`` (default:
    the contract end, or today for an open-ended lease) at ``monthly_cents`` (default: the
    rent in force). Refused while the account's arrears are above the policy's threshold."""
    old = get_lease(session, lease_id)
    if old.status not in (S.EXPIRING, S.OPEN_ENDED):
        raise IllegalTransition(
            f"lease {old.id!r} is {old.status}; only an expiring or open-ended lease is renewed"
        )
    policy = policy_of(session, old.id, today)
    owed = arrears(session, account_of(session, old.id).id, today)
    if owed > policy.arrears_block_cents:
        raise RenewalBlocked(
            f"lease {old.id!r}: arrears {owed} cents are above the "
            f"{policy.arrears_block_cents} cents that block a renewal"
        )
    begin = start_on or (old.end_on if old.status == S.EXPIRING else today)
    months = term_months or old.renewal_term_months
    if monthly_cents is None:
        monthly_cents = rent_in_force(stored_steps(session, old.id), begin)
    successor = Lease(
        id=_successor_id(session, old),
        tenant_id=old.tenant_id,
        unit_id=old.unit_id,
        manager_id=old.manager_id,
        parent_id=old.parent_id,
        renewed_from_id=old.id,
        policy_id=old.policy_id,
        policy_overrides=old.policy_overrides,
        kind=old.kind,
        status=S.SIGNED.value,
        signed_on=today,
        start_on=begin,
        end_on=add_months(begin, months),
        cycle_months=old.cycle_months,
        due_days=old.due_days,
        auto_renew=old.auto_renew,
        renewal_term_months=months,
        deposit_cents=old.deposit_cents,
        schedule=schedule_doc(FixedRent(monthly_cents=monthly_cents), []),
        created_at=clock(),
    )
    session.add(successor)
    session.flush()
    session.add(
        LeaseTransition(
            lease_id=successor.id,
            from_status="",
            to_status=S.SIGNED.value,
            day=today,
            at=clock(),
            by=by,
            reason=f"renewal of {old.id}",
            before={},
            after=_snapshot(successor),
            effects=[],
        )
    )
    record = transition(
        session,
        old,
        S.RENEWED,
        by=by,
        on=today,
        reason=reason,
        changes={"ended_on": begin},
        clock=clock,
    )
    credited = credit_rent_after(session, old, begin, today)
    record.effects = [
        f"successor {successor.id} from {begin} at {monthly_cents} cents/month",
        f"billing stops on {begin}"
        + (f"; {credited} cents billed beyond it credited" if credited else ""),
    ]
    if begin <= today:
        activate_successor(session, successor, today=today, by=by, clock=clock)
    session.flush()
    return successor


def _successor_id(session: Session, old: Lease) -> str:
    base = old.id.split("~r")[0]
    n = 1
    while session.get(Lease, f"{base}~r{n}") is not None:
        n += 1
    return f"{base}~r{n}"


def activate_successor(
    session: Session, successor: Lease, *, today: date, by: str = "daily", clock: Clock = utc_now
) -> None:
    """signed renewal → active on its start (the tenant is in the unit already)."""
    record = transition(
        session,
        successor,
        S.ACTIVE,
        by=by,
        on=today,
        reason=f"renewal of {successor.renewed_from_id} starts",
        changes={"handover_on": successor.start_on, "rent_from": successor.start_on},
        clock=clock,
    )
    plan = store_plan(session, successor)
    record.effects = [f"rent plan: {len(plan.steps)} step(s)"]
    record.after = _snapshot(successor)


def terminate(
    session: Session,
    lease_id: str,
    *,
    on: date,
    today: date,
    by: str,
    reason: str,
    clock: Clock = utc_now,
) -> Lease:
    """signed | active | expiring | open_ended → terminated; ``on`` is the move-out day
    (the first day not billed). Billing stops, meters are unbound from the tenant, the
    tenant's statement access is revoked."""
    lease = get_lease(session, lease_id)
    if not reason.strip():
        raise TermsError(f"lease {lease.id!r}: terminating needs a reason")
    children = session.scalars(
        select(Lease.id).where(
            Lease.parent_id == lease.id,
            Lease.status.in_([S.SIGNED, S.ACTIVE, S.EXPIRING, S.OPEN_ENDED]),
        )
    ).all()
    if children:
        raise IllegalTransition(
            f"lease {lease.id!r} has running sub-account leases "
            f"{', '.join(children)}; terminate them first"
        )
    record = transition(
        session,
        lease,
        S.TERMINATED,
        by=by,
        on=today,
        reason=reason,
        changes={"ended_on": on},
        clock=clock,
    )
    credited = credit_rent_after(session, lease, on, today)
    record.effects = [
        f"billing stops on {on}"
        + (f"; {credited} cents billed beyond it credited" if credited else ""),
        *_unbind_meters(session, lease, on),
        _revoke_access(session, lease, on),
    ]
    session.flush()
    return lease


def _unit_nodes(session: Session, unit_id: str) -> list[str]:
    return list(session.scalars(select(TreeNode.id).where(TreeNode.unit_id == unit_id)))


def _bind_meters(session: Session, lease: Lease, on: date) -> list[str]:
    out = []
    for node in _unit_nodes(session, lease.unit_id):
        open_ = session.scalars(
            select(OccupancySegment).where(
                OccupancySegment.node_id == node,
                OccupancySegment.tenant == lease.tenant_id,
                (OccupancySegment.to.is_(None)) | (OccupancySegment.to > on),
            )
        ).first()
        if open_ is None:
            session.add(OccupancySegment(node_id=node, tenant=lease.tenant_id, from_=on, to=None))
            out.append(f"meters of node {node} bound to {lease.tenant_id} from {on}")
    return out or [f"unit {lease.unit_id} has no meter-tree node to bind"]


def _unbind_meters(session: Session, lease: Lease, on: date) -> list[str]:
    out = []
    for node in _unit_nodes(session, lease.unit_id):
        for seg in session.scalars(
            select(OccupancySegment).where(
                OccupancySegment.node_id == node,
                OccupancySegment.tenant == lease.tenant_id,
                (OccupancySegment.to.is_(None)) | (OccupancySegment.to > on),
            )
        ):
            if seg.from_ >= on:
                session.delete(seg)
            else:
                seg.to = on
            out.append(f"meters of node {node} unbound from {lease.tenant_id} on {on}")
    return out or [f"unit {lease.unit_id}: no meters bound to {lease.tenant_id}"]


def _grant_access(session: Session, lease: Lease, on: date) -> str:
    held = session.scalars(
        select(StatementAccess).where(
            StatementAccess.tenant_id == lease.tenant_id,
            StatementAccess.unit_id == lease.unit_id,
            StatementAccess.revoked_on.is_(None),
        )
    ).first()
    if held is None:
        session.add(
            StatementAccess(
                tenant_id=lease.tenant_id, unit_id=lease.unit_id, lease_id=lease.id, granted_on=on
            )
        )
    return f"statement access of {lease.tenant_id} to {lease.unit_id} from {on}"


def _revoke_access(session: Session, lease: Lease, on: date) -> str:
    for grant in session.scalars(
        select(StatementAccess).where(
            StatementAccess.tenant_id == lease.tenant_id,
            StatementAccess.unit_id == lease.unit_id,
            StatementAccess.revoked_on.is_(None),
        )
    ):
        grant.revoked_on = on
    return f"statement access of {lease.tenant_id} to {lease.unit_id} revoked on {on}"


def has_statement_access(session: Session, tenant_id: str, unit_id: str, day: date) -> bool:
    """Whether the tenant may see the unit's statements on ``day``."""
    return (
        session.scalars(
            select(StatementAccess.id).where(
                StatementAccess.tenant_id == tenant_id,
                StatementAccess.unit_id == unit_id,
                StatementAccess.granted_on <= day,
                (StatementAccess.revoked_on.is_(None)) | (StatementAccess.revoked_on > day),
            )
        ).first()
        is not None
    )
