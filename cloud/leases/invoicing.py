"""Writing a billing run's drafted invoices: the credit line, totals, the rows in bulk.

The billing run (:mod:`cloud.leases.billing`) drafts one invoice per account with its rent,
utility and late-fee lines. A credit line applies the account's credit, at most the rest of
the invoice. Total = rent + utilities + fees − credits, the exact sum of the lines. Rows go
in with COPY on PostgreSQL and executemany elsewhere; no query per lease.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from cloud.apportion.money import cny
from cloud.leases.models import CreditEntry, Invoice, InvoiceLine, Lease, UtilityBilling
from cloud.leases.periods import BillingPeriod
from cloud.leases.utilities import UtilityCharge
from cloud.registry.bulk import bulk_insert, copy_into

RENT, UTILITY, LATE_FEE, CREDIT = "rent", "utility", "late_fee", "credit"
_INVOICE_COLUMNS = (
    "id",
    "lease_id",
    "period_start",
    "period_end",
    "issued_on",
    "due_on",
    "total_cents",
    "paid_cents",
    "status",
    "paid_on",
    "fee_cents",
    "fee_billed_cents",
)


@dataclass(slots=True)
class Draft:
    """An invoice being put together for one account."""

    account: str
    lines: list[tuple[str, str, date | None, date | None, int, str | None, str]] = field(
        default_factory=list
    )  # (lease, kind, from, to, cents, ref, description)
    utilities: list[UtilityCharge] = field(default_factory=list)
    fees: list[tuple[str, int]] = field(default_factory=list)  # (overdue invoice, cents)


def write_invoices(
    session: Session,
    drafts: dict[str, Draft],
    period: BillingPeriod,
    issued_on: date,
    due_days_known: dict[str, int],
) -> dict[str, int]:
    accounts = sorted(drafts)
    due_days = _due_days(session, due_days_known, accounts)
    credits = _credit_balances(session)
    lines, utility_rows, credit_rows, fee_updates = [], [], [], []
    invoice_count = invoice_cents = 0
    totals = {"rent_cents": 0, "utility_cents": 0, "fee_cents": 0, "credit_cents": 0}
    total_of = {
        RENT: "rent_cents",
        UTILITY: "utility_cents",
        LATE_FEE: "fee_cents",
        CREDIT: "credit_cents",
    }
    suffix = f"/{period.label}"
    due_on: dict[int, date] = {}  # due_days → due date
    by_kind = dict.fromkeys(total_of, 0)
    # the invoices go into their COPY as they are made: the server stores them meanwhile
    with copy_into(session, Invoice.__table__, _INVOICE_COLUMNS) as put_invoice:
        for account in accounts:
            draft = drafts[account]
            invoice_id = account + suffix
            rows = draft.lines
            gross = sum(line[4] for line in rows)
            credit = min(credits.get(account, 0), gross) if gross > 0 else 0
            if credit > 0:
                applied = f"credit applied ({cny(credit)} CNY)"
                rows = [*rows, (account, CREDIT, None, None, -credit, None, applied)]
                credit_rows.append((account, issued_on, "applied", invoice_id, -credit))
            total = gross - credit
            fee_total = 0
            for n, (lease_id, kind, a, b, cents, ref, description) in enumerate(rows):
                lines.append((invoice_id, n, lease_id, kind, a, b, cents, ref, description))
                by_kind[kind] += cents
                if kind == LATE_FEE:
                    fee_total += cents
            if total < 0:  # corrections larger than the charges: the rest is credit
                credit_rows.append((account, issued_on, "negative_invoice", invoice_id, -total))
            status, paid_on = ("paid", issued_on) if total <= 0 else ("open", None)
            days = due_days.get(account, 10)
            due = due_on.get(days)
            if due is None:
                due = due_on[days] = issued_on + timedelta(days=days)
            put_invoice(
                (
                    invoice_id,
                    account,
                    period.start,
                    period.end,
                    issued_on,
                    due,
                    total,
                    0,
                    status,
                    paid_on,
                    fee_total,
                    0,
                )
            )
            invoice_count += 1
            invoice_cents += total
            for c in draft.utilities:
                utility_rows.append((c.run_id, c.unit_id, c.party, invoice_id, c.cents))
            fee_updates.extend(draft.fees)
    for kind, cents in by_kind.items():
        totals[total_of[kind]] += -cents if kind == CREDIT else cents
    bulk_insert(
        session,
        InvoiceLine.__table__,
        (
            "invoice_id",
            "line_no",
            "lease_id",
            "kind",
            "covers_from",
            "covers_to",
            "cents",
            "ref",
            "description",
        ),
        lines,
    )
    bulk_insert(
        session,
        UtilityBilling.__table__,
        ("run_id", "unit_id", "party", "invoice_id", "cents"),
        utility_rows,
    )
    bulk_insert(
        session,
        CreditEntry.__table__,
        ("lease_id", "booked_on", "kind", "ref", "cents"),
        credit_rows,
    )
    if fee_updates:
        table = Invoice.__table__
        session.execute(
            update(table)
            .where(table.c.id == bindparam("invoice"))
            .values(fee_billed_cents=table.c.fee_billed_cents + bindparam("cents")),
            [{"invoice": i, "cents": c} for i, c in fee_updates],
        )
    session.flush()
    return {
        "invoices": invoice_count,
        "lines": len(lines),
        "total_cents": invoice_cents,
        **totals,
    }


def _due_days(session: Session, known: dict[str, int], accounts: list[str]) -> dict[str, int]:
    missing = [a for a in accounts if a not in known]
    out = dict(known)
    for i in range(0, len(missing), 500):
        out.update(
            session.execute(
                select(Lease.id, Lease.due_days).where(Lease.id.in_(missing[i : i + 500]))
            ).all()
        )
    return out


def _credit_balances(session: Session) -> dict[str, int]:
    return {
        lease_id: int(cents)
        for lease_id, cents in session.execute(
            select(CreditEntry.lease_id, func.sum(CreditEntry.cents))
            .group_by(CreditEntry.lease_id)
            .having(func.sum(CreditEntry.cents) > 0)
        )
    }
