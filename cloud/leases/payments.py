"""Payments and the account's ledger: allocation to invoices, credit, arrears, paid-through.

A payment belongs to a billing lease (a parent, or a lease without parent; a payment
recorded against a child lease goes to its parent). It settles the account's open invoices
oldest first (by due date); what remains is carried as credit (``overpayment``), which the
next invoice applies as a credit line. Recording the same (account, reference) again
changes nothing.

Paid-through (docs/domain.md §5): the day of the last *covering* payment — one at least as large
as a cycle's rent (monthly rent in force × cycle months) — plus the payment cycle. A
quarterly payer who paid in February is paid through May even if the contract ended in March.
Expiry counts the payments made up to the contract end only: what a tenant pays after it,
while staying, is the open-ended tenancy's rent and does not push the expiry on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.leases.errors import PaymentConflict, PaymentError, UnknownRecord
from cloud.leases.models import (
    CreditEntry,
    Invoice,
    InvoiceLine,
    Lease,
    Payment,
    PaymentAllocation,
)
from cloud.leases.periods import add_months
from cloud.leases.plans import stored_steps
from cloud.leases.schedule import rent_in_force

OPEN, PAID = "open", "paid"


@dataclass(frozen=True)
class PaymentReceipt:
    """Where a payment went: the account, each invoice settled [cents], the credit left."""

    payment_id: int
    account_id: str
    allocations: tuple[tuple[str, int], ...]
    credit_cents: int
    duplicate: bool = False


def account_of(session: Session, lease_id: str) -> Lease:
    """The billing lease of ``lease_id``: its parent, or itself."""
    lease = session.get(Lease, lease_id)
    if lease is None:
        raise UnknownRecord(f"lease {lease_id!r} does not exist")
    if lease.parent_id is not None:
        parent = session.get(Lease, lease.parent_id)
        assert parent is not None  # a foreign key
        return parent
    return lease


def record_payment(
    session: Session, lease_id: str, *, cents: int, received_on: date, ref: str
) -> PaymentReceipt:
    """Record ``cents`` received on ``received_on`` with the bank reference ``ref`` and
    allocate it: oldest open invoice first, the rest as credit."""
    if cents <= 0:
        raise PaymentError(
            f"payment {ref!r} for lease {lease_id!r}: expected a positive "
            f"amount of cents, got {cents}"
        )
    account = account_of(session, lease_id)
    existing = session.scalars(
        select(Payment).where(Payment.lease_id == account.id, Payment.ref == ref)
    ).first()
    if existing is not None:
        if (existing.cents, existing.received_on) != (cents, received_on):
            raise PaymentConflict(
                f"payment {ref!r} of lease {account.id!r} is recorded as "
                f"{existing.cents} cents on {existing.received_on}, now it "
                f"comes as {cents} cents on {received_on}"
            )
        allocated = session.execute(
            select(PaymentAllocation.invoice_id, PaymentAllocation.cents).where(
                PaymentAllocation.payment_id == existing.id
            )
        ).all()
        credit = cents - sum(c for _, c in allocated)
        return PaymentReceipt(
            existing.id, account.id, tuple((i, c) for i, c in allocated), credit, duplicate=True
        )
    payment = Payment(lease_id=account.id, ref=ref, received_on=received_on, cents=cents)
    session.add(payment)
    session.flush()
    remaining = cents
    allocations: list[tuple[str, int]] = []
    invoices = session.scalars(
        select(Invoice)
        .where(Invoice.lease_id == account.id, Invoice.status == OPEN)
        .order_by(Invoice.due_on, Invoice.id)
    )
    for invoice in invoices:
        if remaining == 0:
            break
        take = min(remaining, invoice.total_cents - invoice.paid_cents)
        if take <= 0:
            continue
        session.add(
            PaymentAllocation(
                payment_id=payment.id, invoice_id=invoice.id, cents=take, allocated_on=received_on
            )
        )
        invoice.paid_cents += take
        if invoice.paid_cents == invoice.total_cents:
            invoice.status, invoice.paid_on = PAID, received_on
        allocations.append((invoice.id, take))
        remaining -= take
    if remaining:
        session.add(
            CreditEntry(
                lease_id=account.id,
                booked_on=received_on,
                kind="overpayment",
                ref=str(payment.id),
                cents=remaining,
            )
        )
    session.flush()
    return PaymentReceipt(payment.id, account.id, tuple(allocations), remaining)


def credit_balance(session: Session, account_id: str) -> int:
    """The account's credit not yet applied [cents]."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(CreditEntry.cents), 0)).where(
                CreditEntry.lease_id == account_id
            )
        )
    )


def arrears(session: Session, account_id: str, today: date) -> int:
    """What the account owes on invoices due before ``today`` [cents]."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Invoice.total_cents - Invoice.paid_cents), 0)).where(
                Invoice.lease_id == account_id, Invoice.status == OPEN, Invoice.due_on < today
            )
        )
    )


def paid_through(session: Session, lease: Lease, *, as_of: date | None = None) -> date | None:
    """Day of the last covering payment of the lease's account (received on or before
    ``as_of``, if given) + the lease's payment cycle (exclusive); None without one."""
    steps = stored_steps(session, lease.id)
    if not steps:
        return None
    account = lease.parent_id or lease.id
    q = select(Payment.received_on, Payment.cents).where(Payment.lease_id == account)
    if as_of is not None:
        q = q.where(Payment.received_on <= as_of)
    payments = session.execute(q.order_by(Payment.received_on.desc(), Payment.id.desc())).all()
    for received_on, cents in payments:
        if cents >= rent_in_force(steps, received_on) * lease.cycle_months:
            return add_months(received_on, lease.cycle_months)
    return None


def covering_payment_between(session: Session, lease: Lease, start: date, end: date) -> date | None:
    """The day of a payment in [``start``, ``end``] that covers the lease's next cycle
    (at least the rent in force at ``end`` × cycle months); None if there is none."""
    steps = stored_steps(session, lease.id)
    need = rent_in_force(steps, end) * lease.cycle_months if steps else 0
    account = lease.parent_id or lease.id
    found = session.scalar(
        select(func.max(Payment.received_on)).where(
            Payment.lease_id == account,
            Payment.received_on >= start,
            Payment.received_on <= end,
            Payment.cents >= need,
        )
    )
    return found


def first_rent_paid(session: Session, lease_ids: list[str] | None = None) -> set[str]:
    """Leases with a fully paid invoice that carries their rent (the occupancy rule)."""
    q = (
        select(InvoiceLine.lease_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.kind == "rent", Invoice.status == PAID)
        .distinct()
    )
    if lease_ids is not None:
        q = q.where(InvoiceLine.lease_id.in_(lease_ids))
    return set(session.scalars(q))
