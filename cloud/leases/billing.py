"""The billing run of a period: one invoice per billing lease with rent, utility, late-fee
and credit lines, written in bulk.

Rent is billed in advance, per payment cycle: cycles of ``cycle_months`` calendar months
run from the month rent starts (``rent_from``), and the invoice of the period a cycle starts
in carries the rent of that cycle's days [max(cycle start, rent_from), min(cycle end,
ended_on)). A lease whose rent started after its first cycle's invoice was made (a handover
on the 20th) has that first cycle caught up on the next invoice. Each rent line is keyed by
(lease, first day) under a unique constraint, so no day is billed twice. A child lease's
lines go on its parent's invoice.

Utility lines: every posted apportionment amount not billed yet (see
:mod:`cloud.leases.utilities`), put on the invoice of the lease of that tenant and unit that
held the unit on the tenant's last day in the run. Late-fee lines: what accrued on the
account's overdue invoices (:func:`cloud.leases.dunning.late_fee`) before the period's first
day, less what was billed before. A credit line applies the account's credit, at most the
rest of the invoice. Total = rent + utilities + fees − credits, the exact sum of the lines.

Each line is rounded once, half up, to the cent (:mod:`cloud.leases.money`). The run makes
an invoice only for an account that has none for the period yet, so running it again
inserts nothing; on PostgreSQL it holds an advisory lock so two runs never interleave.
Rows go in with COPY on PostgreSQL and executemany elsewhere; no query per lease.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Table, and_, bindparam, func, or_, select, text, tuple_, update
from sqlalchemy.orm import Session

from cloud.leases.dunning import late_fee
from cloud.leases.errors import ScheduleIncomplete
from cloud.leases.models import (
    CreditEntry,
    Invoice,
    InvoiceLine,
    Lease,
    PaymentAllocation,
    RentStepRow,
    UtilityBilling,
)
from cloud.leases.money import cny, round_half_up
from cloud.leases.periods import BillingPeriod, add_months, month_start, months_between
from cloud.leases.plans import store_plan, stored_steps
from cloud.leases.reference import cpi_series, policies
from cloud.leases.schedule import RentStep, rent_for
from cloud.leases.utilities import UtilityCharge, UtilityChargeSource

RENT, UTILITY, LATE_FEE, CREDIT = "rent", "utility", "late_fee", "credit"
LATE_PAYMENT_LOOKBACK = timedelta(days=92)
"""Invoices paid late within this long before a period still get their final fee billed."""
_LOCK_KEY = 7_240_417  # pg_advisory_xact_lock key of the billing run


@dataclass(frozen=True)
class BillingReport:
    """What a billing run did [cents]; ``held`` lists leases not billed and why,
    ``unmatched`` the posted utility amounts no lease could take."""

    period: str
    invoices: int = 0
    lines: int = 0
    rent_cents: int = 0
    utility_cents: int = 0
    fee_cents: int = 0
    credit_cents: int = 0
    total_cents: int = 0
    already_billed: int = 0
    held: tuple[tuple[str, str], ...] = ()
    unmatched: tuple[UtilityCharge, ...] = field(default=())


@dataclass
class _Draft:
    """An invoice being put together for one account."""

    account: str
    lines: list[tuple[str, str, date | None, date | None, int, str | None, str]] = field(
        default_factory=list
    )  # (lease, kind, from, to, cents, ref, description)
    utilities: list[UtilityCharge] = field(default_factory=list)
    fees: list[tuple[str, int]] = field(default_factory=list)  # (overdue invoice, cents)


@dataclass(frozen=True)
class _LeaseRow:
    id: str
    account: str
    rent_from: date
    ended_on: date | None
    cycle_months: int
    known_until: date | None
    due_days: int
    unit_id: str
    tenant_id: str


def rent_segments(
    rent_from: date, ended_on: date | None, cycle_months: int, period: BillingPeriod
) -> tuple[tuple[date, date] | None, tuple[date, date] | None]:
    """The rent spans [from, to) the invoice of ``period`` carries for one lease: the cycle
    starting in the period (if one does), and the lease's first cycle when rent started
    after that cycle's own invoice could be made (a catch-up, billed only if it was not)."""
    anchor = month_start(rent_from)
    since = months_between(anchor, period.start)
    regular = catch_up = None
    if since >= 0 and since % cycle_months == 0:
        a = max(period.start, rent_from)
        b = add_months(period.start, cycle_months)
        b = min(b, ended_on) if ended_on else b
        if a < b:
            regular = (a, b)
    if 1 <= since <= cycle_months and rent_from < period.start:
        b = add_months(anchor, cycle_months)
        b = min(b, ended_on) if ended_on else b
        if rent_from < b:
            catch_up = (rent_from, b)
    return regular, catch_up


def run_billing(
    session: Session,
    period: BillingPeriod,
    *,
    utilities: UtilityChargeSource,
    today: date | None = None,
) -> BillingReport:
    """Bill ``period`` for every lease that owes something in it; see the module doc.

    Invoices are issued on the period's first day, or on ``today`` when the run comes later
    (a lease handed over after the period's run), and due ``due_days`` after that.
    """
    issued_on = max(period.start, today) if today else period.start
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    billed = set(
        session.scalars(select(Invoice.lease_id).where(Invoice.period_start == period.start))
    )
    running = and_(
        Lease.rent_from.is_not(None),
        Lease.rent_from < period.end,
        or_(Lease.ended_on.is_(None), Lease.ended_on > add_months(period.start, -12)),
    )
    leases = [
        _LeaseRow(i, p or i, r, e, c, k, d, u, t)
        for i, p, r, e, c, k, d, u, t in session.execute(
            select(
                Lease.id,
                Lease.parent_id,
                Lease.rent_from,
                Lease.ended_on,
                Lease.cycle_months,
                Lease.plan_known_until,
                Lease.due_days,
                Lease.unit_id,
                Lease.tenant_id,
            ).where(running)
        )
    ]
    steps: dict[str, list[RentStep]] = defaultdict(list)
    for lease_id, starts_on, cents, free, source in session.execute(
        select(
            RentStepRow.lease_id,
            RentStepRow.starts_on,
            RentStepRow.monthly_cents,
            RentStepRow.free,
            RentStepRow.source,
        )
        .join(Lease, Lease.id == RentStepRow.lease_id)
        .where(running)
        .order_by(RentStepRow.lease_id, RentStepRow.starts_on)
    ):
        steps[lease_id].append(RentStep(starts_on, cents, free, source))

    drafts: dict[str, _Draft] = {}
    held: dict[str, str] = {}
    already = {lease.account for lease in leases if lease.account in billed}
    spans: list[tuple[_LeaseRow, tuple[date, date]]] = []
    catch_ups: dict[str, tuple[_LeaseRow, tuple[date, date]]] = {}
    for lease in leases:
        if lease.account in billed:
            continue
        regular, catch_up = rent_segments(
            lease.rent_from, lease.ended_on, lease.cycle_months, period
        )
        if regular is not None:
            spans.append((lease, regular))
        if catch_up is not None:
            catch_ups[lease.id] = (lease, catch_up)
    if catch_ups:
        done = _rent_lines_billed(session, [(i, span[0]) for i, (_, span) in catch_ups.items()])
        spans.extend(
            item
            for lease_id, item in sorted(catch_ups.items())
            if (lease_id, item[1][0]) not in done
        )
    cpi: dict[date, Decimal] | None = None
    for lease, span in spans:
        if lease.known_until is not None and span[1] > lease.known_until:
            cpi = cpi_series(session) if cpi is None else cpi
            try:
                steps[lease.id] = _extended_steps(session, lease.id, span[1], cpi)
            except ScheduleIncomplete as exc:
                held[lease.id] = str(exc)
                continue
        _add_rent(drafts, lease, span, steps[lease.id])

    unmatched = _add_utilities(
        session, drafts, billed, utilities.unbilled_charges(session, through=period.end), leases
    )
    _add_late_fees(session, drafts, billed, period)
    report = _write(
        session, drafts, period, issued_on, {lease.id: lease.due_days for lease in leases}
    )
    return BillingReport(
        period=period.label,
        already_billed=len(already),
        held=tuple(sorted(held.items())),
        unmatched=tuple(unmatched),
        **report,
    )


def _extended_steps(
    session: Session, lease_id: str, needed_until: date, cpi: Mapping[date, Decimal]
) -> list[RentStep]:
    """Recompile a CPI-linked plan with the published indices; raise ScheduleIncomplete if
    it still does not reach ``needed_until``."""
    lease = session.get(Lease, lease_id)
    assert lease is not None  # it was just selected
    plan = store_plan(session, lease, cpi)
    if plan.known_until is not None and needed_until > plan.known_until:
        raise ScheduleIncomplete(
            f"lease {lease_id!r}: rent from {plan.known_until} on is "
            "CPI-linked and the index it needs is not published yet"
        )
    return list(plan.steps)


def _add_rent(
    drafts: dict[str, _Draft], lease: _LeaseRow, span: tuple[date, date], steps: Sequence[RentStep]
) -> None:
    a, b = span
    cents = round_half_up(rent_for(steps, a, b))
    if cents == 0:
        return
    draft = drafts.get(lease.account)
    if draft is None:
        draft = drafts[lease.account] = _Draft(lease.account)
    draft.lines.append(
        (lease.id, RENT, a, b, cents, None, f"rent {lease.id} {a.isoformat()} … {b.isoformat()}")
    )


def _rent_lines_billed(session: Session, keys: list[tuple[str, date]]) -> set[tuple[str, date]]:
    found: set[tuple[str, date]] = set()
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        found.update(
            session.execute(
                select(InvoiceLine.lease_id, InvoiceLine.covers_from).where(
                    InvoiceLine.kind == RENT,
                    tuple_(InvoiceLine.lease_id, InvoiceLine.covers_from).in_(chunk),
                )
            )
        )
    return found


def _add_utilities(
    session: Session,
    drafts: dict[str, _Draft],
    billed: set[str],
    charges: list[UtilityCharge],
    known: list[_LeaseRow],
) -> list[UtilityCharge]:
    """Put each charge on the invoice of its lease's account; return those without lease.
    ``known`` are the leases read already; others of the charges' tenants are looked up."""
    if not charges:
        return []
    pairs = {(c.unit_id, c.party) for c in charges}
    found: dict[tuple[str, str], dict[str, tuple[str, str, date, date | None]]] = defaultdict(dict)
    for lease in known:
        if (lease.unit_id, lease.tenant_id) in pairs:
            found[(lease.unit_id, lease.tenant_id)][lease.id] = (
                lease.id,
                lease.account,
                lease.rent_from,
                lease.ended_on,
            )
    missing = sorted(
        {
            (c.unit_id, c.party)
            for c in charges
            if _holding(found.get((c.unit_id, c.party), {}).values(), c.last_day) is None
        }
    )
    for i in range(0, len(missing), 500):
        for lease_id, parent, unit, tenant, rent_from, ended_on in session.execute(
            select(
                Lease.id,
                Lease.parent_id,
                Lease.unit_id,
                Lease.tenant_id,
                Lease.rent_from,
                Lease.ended_on,
            ).where(
                Lease.rent_from.is_not(None),
                tuple_(Lease.unit_id, Lease.tenant_id).in_(missing[i : i + 500]),
            )
        ):
            found[(unit, tenant)][lease_id] = (lease_id, parent or lease_id, rent_from, ended_on)
    unmatched = []
    for charge in charges:
        options = found.get((charge.unit_id, charge.party), {}).values()
        chosen = _holding(options, charge.last_day) or max(
            (c for c in options if c[2] <= charge.last_day),
            key=lambda c: (c[2], c[0]),
            default=None,
        )
        if chosen is None:
            unmatched.append(charge)
            continue
        lease_id, account = chosen[0], chosen[1]
        if account in billed:
            continue  # the account's invoice for this period exists: the next one takes it
        draft = drafts.get(account)
        if draft is None:
            draft = drafts[account] = _Draft(account)
        draft.lines.append(
            (
                lease_id,
                UTILITY,
                None,
                None,
                charge.cents,
                charge.run_id,
                f"utilities {charge.unit_id} {charge.period_start.isoformat()} … "
                f"{charge.period_end.isoformat()} (run {charge.run_id})",
            )
        )
        draft.utilities.append(charge)
    return unmatched


def _holding(
    options: Iterable[tuple[str, str, date, date | None]], day: date
) -> tuple[str, str, date, date | None] | None:
    """The lease (id, account, rent from, ended on) that held the unit on ``day``: the
    latest to start among those running that day."""
    return max(
        (c for c in options if c[2] <= day and (c[3] is None or day < c[3])),
        key=lambda c: (c[2], c[0]),
        default=None,
    )


def _add_late_fees(
    session: Session, drafts: dict[str, _Draft], billed: set[str], period: BillingPeriod
) -> None:
    overdue = session.execute(
        select(
            Invoice.id,
            Invoice.lease_id,
            Invoice.due_on,
            Invoice.total_cents,
            Invoice.fee_cents,
            Invoice.fee_billed_cents,
            Lease.policy_id,
        )
        .join(Lease, Lease.id == Invoice.lease_id)
        .where(
            Invoice.due_on < period.start,
            or_(
                and_(Invoice.status == "open", Invoice.total_cents > Invoice.paid_cents),
                and_(
                    Invoice.status == "paid",
                    Invoice.paid_on > Invoice.due_on,
                    Invoice.paid_on >= period.start - LATE_PAYMENT_LOOKBACK,
                ),
            ),
        )
        .order_by(Invoice.id)
    ).all()
    overdue = [row for row in overdue if row[1] not in billed]
    if not overdue:
        return
    paid: dict[str, list[tuple[date, int]]] = defaultdict(list)
    ids = [row[0] for row in overdue]
    for i in range(0, len(ids), 500):
        for invoice_id, on, cents in session.execute(
            select(
                PaymentAllocation.invoice_id,
                PaymentAllocation.allocated_on,
                PaymentAllocation.cents,
            ).where(PaymentAllocation.invoice_id.in_(ids[i : i + 500]))
        ):
            paid[invoice_id].append((on, cents))
    rules = policies(session)
    for invoice_id, account, due_on, total, fees, fee_billed, policy_id in overdue:
        policy = rules.get(policy_id, rules[None])
        accrued = late_fee(
            total - fees, due_on, paid[invoice_id], through=period.start, policy=policy.late_fee
        )
        owed = accrued - fee_billed
        if owed <= 0:
            continue
        draft = drafts.get(account)
        if draft is None:
            draft = drafts[account] = _Draft(account)
        draft.lines.append(
            (
                account,
                LATE_FEE,
                None,
                period.start,
                owed,
                invoice_id,
                f"late fee on {invoice_id} (due {due_on.isoformat()}) through "
                f"{(period.start - timedelta(days=1)).isoformat()}",
            )
        )
        draft.fees.append((invoice_id, owed))


def _write(
    session: Session,
    drafts: dict[str, _Draft],
    period: BillingPeriod,
    issued_on: date,
    due_days_known: dict[str, int],
) -> dict[str, int]:
    accounts = sorted(drafts)
    due_days = _due_days(session, due_days_known, accounts)
    credits = _credit_balances(session)
    invoices, lines, utility_rows, credit_rows, fee_updates = [], [], [], [], []
    totals = {"rent_cents": 0, "utility_cents": 0, "fee_cents": 0, "credit_cents": 0}
    total_of = {
        RENT: "rent_cents",
        UTILITY: "utility_cents",
        LATE_FEE: "fee_cents",
        CREDIT: "credit_cents",
    }
    suffix = f"/{period.label}"
    for account in accounts:
        draft = drafts[account]
        invoice_id = account + suffix
        gross = sum(line[4] for line in draft.lines)
        credit = min(credits.get(account, 0), gross) if gross > 0 else 0
        rows = list(draft.lines)
        if credit > 0:
            rows.append(
                (account, CREDIT, None, None, -credit, None, f"credit applied ({cny(credit)} CNY)")
            )
            credit_rows.append((account, issued_on, "applied", invoice_id, -credit))
        total = gross - credit
        fee_total = 0
        for n, (lease_id, kind, a, b, cents, ref, description) in enumerate(rows):
            lines.append((invoice_id, n, lease_id, kind, a, b, cents, ref, description))
            totals[total_of[kind]] += -cents if kind == CREDIT else cents
            if kind == LATE_FEE:
                fee_total += cents
        if total < 0:  # corrections larger than the charges: the rest is credit
            credit_rows.append((account, issued_on, "negative_invoice", invoice_id, -total))
        status, paid_on = ("paid", issued_on) if total <= 0 else ("open", None)
        invoices.append(
            (
                invoice_id,
                account,
                period.start,
                period.end,
                issued_on,
                issued_on + timedelta(days=due_days.get(account, 10)),
                total,
                0,
                status,
                paid_on,
                fee_total,
                0,
            )
        )
        utility_rows.extend(
            (c.run_id, c.unit_id, c.party, invoice_id, c.cents) for c in draft.utilities
        )
        fee_updates.extend(draft.fees)
    _bulk_insert(
        session,
        Invoice.__table__,
        (
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
        ),
        invoices,
    )
    _bulk_insert(
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
    _bulk_insert(
        session,
        UtilityBilling.__table__,
        ("run_id", "unit_id", "party", "invoice_id", "cents"),
        utility_rows,
    )
    _bulk_insert(
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
        "invoices": len(invoices),
        "lines": len(lines),
        "total_cents": sum(row[6] for row in invoices),
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


def _bulk_insert(
    session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    """Insert ``rows`` in one go: COPY on PostgreSQL, executemany elsewhere."""
    rows = list(rows)
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        raw = connection.connection.driver_connection
        names = ", ".join(f'"{c}"' for c in columns)
        with (
            raw.cursor() as cursor,
            cursor.copy(  # type: ignore[union-attr]
                f'COPY "{table.name}" ({names}) FROM STDIN'
            ) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    session.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])


def credit_rent_after(session: Session, lease: Lease, day: date, today: date) -> int:
    """Turn rent billed for the lease's days from ``day`` on into account credit [cents]
    (each billed line's part recomputed exactly and rounded once); return the credit."""
    lines = session.execute(
        select(InvoiceLine.covers_from, InvoiceLine.covers_to).where(
            InvoiceLine.lease_id == lease.id, InvoiceLine.kind == RENT, InvoiceLine.covers_to > day
        )
    ).all()
    if not lines:
        return 0
    steps = stored_steps(session, lease.id)
    credit = sum(round_half_up(rent_for(steps, max(a, day), b)) for a, b in lines)
    if credit:
        session.add(
            CreditEntry(
                lease_id=lease.parent_id or lease.id,
                booked_on=today,
                kind="refund",
                ref=f"{lease.id}@{day.isoformat()}",
                cents=credit,
            )
        )
        session.flush()
    return credit
