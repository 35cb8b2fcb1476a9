"""The lease list of the staff pages: the leases within a staff member's scope (sites, and
buildings where the account is limited to some), each with its tenant, unit and manager, and
the sensitive fields as :mod:`cloud.staff.visibility` lets the member's role see them.

Read-only. A lease out of scope is reported as not found (:class:`UnknownRecord`), as the other
services do with records of another site. Amounts are integer cents; "today" (for arrears) is
the local calendar day of the service's clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from cloud.apportion.models import Unit
from cloud.apportion.money import cny
from cloud.leases.errors import PaymentError, UnknownRecord
from cloud.leases.models import CreditEntry, Invoice, Lease, LeaseTransition, Staff, Tenant
from cloud.leases.payments import OPEN, PaymentReceipt, record_payment
from cloud.leases.periods import LOCAL_TZ
from cloud.staff.accounts import Principal, Role
from cloud.staff.audit import entries_for, record_change
from cloud.staff.visibility import LeaseFields, visible
from edge.wire import Clock, utc_now

#: The most leases one listing returns.
MAX_LIST = 2000


@dataclass(frozen=True)
class HistoryEntry:
    """One change to a lease or its account, as its page shows it: when (UTC), who, from
    where (``web 127.0.0.1``, ``api …``, ``cli``; empty for entries written before origins were
    kept), what (``action``), the fields changed as (field, before, after) with None for a
    value not there, and a note."""

    at: datetime
    actor: str
    origin: str
    action: str
    changes: tuple[tuple[str, Any, Any], ...]
    note: str


@dataclass(frozen=True)
class LeaseRow:
    """A lease as one staff member may see it. ``arrears_cents`` (owed on invoices past due)
    and ``credit_cents`` (credit not yet applied) are of the lease's billing account (its
    parent's for a child lease), None when withheld from the role; ``id_number`` is the
    tenant's, masked unless the role sees it in full, None when not recorded."""

    id: str
    status: str
    kind: str
    site_id: str
    building: str
    unit_id: str
    unit_name: str
    tenant_id: str
    tenant_name: str
    id_number: str | None
    manager_id: str
    manager_name: str
    start_on: date
    end_on: date
    deposit_cents: int
    arrears_cents: int | None
    credit_cents: int | None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def scope_condition(who: Principal) -> ColumnElement[bool] | None:
    """The SQL condition on :class:`Unit` that keeps ``who``'s scope; None: everything
    (admin)."""
    if who.role is Role.ADMIN:
        return None
    parts: list[ColumnElement[bool]] = []
    whole = sorted(s for s in who.sites if who.buildings_of(s) is None)
    if whole:
        parts.append(Unit.site_id.in_(whole))
    for site in sorted(who.sites):
        limited = who.buildings_of(site)
        if limited is not None:
            parts.append(and_(Unit.site_id == site, Unit.building.in_(sorted(limited))))
    return or_(*parts) if parts else false()


def _sums(session: Session, accounts: Iterable[str], today: date) -> tuple[dict, dict]:
    """(arrears, credit) [cents] per billing account."""
    wanted = sorted(set(accounts))
    if not wanted:
        return {}, {}
    arrears = dict(
        session.execute(
            select(Invoice.lease_id, func.sum(Invoice.total_cents - Invoice.paid_cents))
            .where(Invoice.lease_id.in_(wanted), Invoice.status == OPEN, Invoice.due_on < today)
            .group_by(Invoice.lease_id)
        ).all()
    )
    credit = dict(
        session.execute(
            select(CreditEntry.lease_id, func.sum(CreditEntry.cents))
            .where(CreditEntry.lease_id.in_(wanted))
            .group_by(CreditEntry.lease_id)
        ).all()
    )
    return arrears, credit


def check_received_on(received_on: date, today: date) -> None:
    """PaymentError unless a payment's day is within the last year up to ``today``."""
    if not today - timedelta(days=366) <= received_on <= today:
        raise PaymentError(
            f"received on {received_on}: expected a day from {today - timedelta(days=366)} "
            f"to today ({today})"
        )


class LeaseDesk:
    """What every lease service holds: the registry's sessions and the clock, and from it
    today's date in the local calendar (:data:`~cloud.leases.periods.LOCAL_TZ`)."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.clock = clock

    def today(self) -> date:
        """The local calendar day of the service's clock."""
        return self.clock().astimezone(LOCAL_TZ).date()


class LeaseRoster(LeaseDesk):
    """Lists and opens leases within a staff member's scope, with the visibility policy
    applied."""

    def leases(
        self,
        who: Principal,
        *,
        site: str | None = None,
        building: str | None = None,
        status: str | None = None,
        lease_id: str | None = None,
        limit: int = 500,
    ) -> list[LeaseRow]:
        """``who``'s leases, by site, building, unit and start; narrowed to one ``site``,
        ``building``, ``status`` or lease when given."""
        manager = aliased(Staff)
        query = (
            select(Lease, Unit, Tenant, manager.name)
            .join(Unit, Unit.id == Lease.unit_id)
            .join(Tenant, Tenant.id == Lease.tenant_id)
            .join(manager, manager.id == Lease.manager_id)
            .order_by(Unit.site_id, Unit.building, Unit.id, Lease.start_on, Lease.id)
            .limit(min(max(limit, 1), MAX_LIST))
        )
        scope = scope_condition(who)
        if scope is not None:
            query = query.where(scope)
        for column, value in (
            (Unit.site_id, site),
            (Unit.building, building),
            (Lease.status, status),
            (Lease.id, lease_id),
        ):
            if value is not None:
                query = query.where(column == value)
        with self.sessions() as session:
            rows = session.execute(query).all()
            accounts = {lease.parent_id or lease.id for lease, *_ in rows}
            arrears, credit = _sums(session, accounts, self.today())
        out = []
        for lease, unit, tenant, manager_name in rows:
            account = lease.parent_id or lease.id
            shown = visible(
                who.role,
                LeaseFields(
                    int(arrears.get(account) or 0),
                    int(credit.get(account) or 0),
                    tenant.id_number,
                ),
            )
            out.append(
                LeaseRow(
                    id=lease.id,
                    status=lease.status,
                    kind=lease.kind,
                    site_id=unit.site_id,
                    building=unit.building,
                    unit_id=unit.id,
                    unit_name=unit.name or unit.id,
                    tenant_id=tenant.id,
                    tenant_name=tenant.name,
                    id_number=shown.id_number,
                    manager_id=lease.manager_id,
                    manager_name=manager_name,
                    start_on=lease.start_on,
                    end_on=lease.end_on,
                    deposit_cents=lease.deposit_cents,
                    arrears_cents=shown.arrears_cents,
                    credit_cents=shown.credit_cents,
                )
            )
        return out

    def lease(self, who: Principal, lease_id: str) -> LeaseRow:
        """One lease; UnknownRecord when it does not exist or is out of ``who``'s scope."""
        found = self.leases(who, lease_id=lease_id, limit=1)
        if not found:
            raise UnknownRecord(f"no lease {lease_id!r} in your sites and buildings")
        return found[0]

    def history(self, who: Principal, lease_id: str, limit: int = 500) -> list[HistoryEntry]:
        """Every recorded change to a lease, newest first (at most ``limit``): its state
        changes (with the fields changed) and the audit log's entries about it (payments,
        offers, policy overrides, edits), each with who and from where. UnknownRecord out of
        ``who``'s scope."""
        self.lease(who, lease_id)
        with self.sessions() as session:
            out = [
                _audit_entry(e.at, e.actor, e.action, e.detail)
                for e in entries_for(session, [f"lease:{lease_id}"], limit=limit, newest_first=True)
            ]
            for t in session.scalars(
                select(LeaseTransition)
                .where(LeaseTransition.lease_id == lease_id)
                .order_by(LeaseTransition.id.desc())
                .limit(limit)
            ):
                changed = {
                    k for k in t.before.keys() | t.after.keys() if t.before.get(k) != t.after.get(k)
                }
                out.append(
                    HistoryEntry(
                        t.at if t.at.tzinfo else t.at.replace(tzinfo=UTC),
                        t.by,
                        "",
                        "status",
                        (
                            ("status", t.from_status, t.to_status),
                            *(
                                (k, t.before.get(k), t.after.get(k))
                                for k in sorted(changed - {"status"})
                            ),
                        ),
                        t.reason,
                    )
                )
        out.sort(key=lambda e: e.at, reverse=True)
        return out[:limit]

    def record_payment(
        self, who: Principal, lease_id: str, *, cents: int, received_on: date, ref: str
    ) -> PaymentReceipt:
        """Record ``cents`` the tenant of ``lease_id`` paid on ``received_on`` (bank
        reference ``ref``), allocated to the billing account's oldest open invoices first,
        the rest kept as credit (:func:`cloud.leases.payments.record_payment`); audited.

        UnknownRecord outside ``who``'s sites and buildings; PaymentError for a day in the
        future or more than a year back, a non-positive amount, or a reference already
        recorded with another amount or day (the same payment again is answered with its
        first receipt, ``duplicate`` set, and changes nothing)."""
        self.lease(who, lease_id)
        check_received_on(received_on, self.today())
        with self.sessions.begin() as session:
            receipt = record_payment(
                session, lease_id, cents=cents, received_on=received_on, ref=ref
            )
            if not receipt.duplicate:
                audit_payment(
                    session,
                    who,
                    receipt,
                    self.clock(),
                    cents=cents,
                    received_on=received_on,
                    ref=ref,
                    note=f"payment {receipt.payment_id} (by hand)",
                )
        return receipt


def audit_payment(
    session: Session,
    who: Principal,
    receipt: PaymentReceipt,
    at: datetime,
    *,
    cents: int,
    received_on: date,
    ref: str,
    note: str,
) -> None:
    """The audit entry of a payment recorded (by hand or from a bank line): on its billing
    account's lease (``lease:ID``, so the lease's history shows it), who and from where, the
    amount, day and bank reference, each invoice settled and the credit left [yuan]."""
    record_change(
        session,
        at=at,
        actor=who.username,
        origin=who.origin,
        action="payment",
        subject=f"lease:{receipt.account_id}",
        before=None,
        after={
            "ref": ref,
            "amount": cny(cents),
            "received_on": received_on,
            "settled": {i: cny(c) for i, c in receipt.allocations},
            "credit": cny(receipt.credit_cents),
        },
        note=note,
    )


def _changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple:
    old, new = before or {}, after or {}
    return tuple((k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()))


def _audit_entry(at: datetime, actor: str, action: str, detail: str) -> HistoryEntry:
    try:
        doc = json.loads(detail) if detail.startswith("{") else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or "from" not in doc:
        return HistoryEntry(at, actor, "", action, (), detail)
    return HistoryEntry(
        at,
        actor,
        str(doc.get("from") or ""),
        action,
        _changes(doc.get("before"), doc.get("after")),
        str(doc.get("note") or ""),
    )


class ScopedDesk(LeaseDesk):
    """A lease service that opens leases through the :class:`LeaseRoster` (the caller's
    scope and the visibility policy applied)."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock = utc_now) -> None:
        super().__init__(sessions, clock)
        self.roster = LeaseRoster(sessions, clock)
