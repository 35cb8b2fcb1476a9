"""The billing run of a period: the rent, utility and late-fee lines each account owes.

One invoice per billing lease with rent, utility, late-fee and credit lines; the credit
line, the totals and writing the rows in bulk are :mod:`cloud.leases.invoicing`'s.

Rent is billed in advance, per payment cycle: cycles of ``cycle_months`` calendar months
run from the month rent starts (``rent_from``), and the invoice of the period a cycle starts
in carries the rent of that cycle's days [max(cycle start, rent_from), min(cycle end,
ended_on)). A lease whose rent started after its first cycle's invoice was made (a handover
on the 20th) has that first cycle caught up on the next invoice. Each rent line is keyed by
(lease, first day) under a unique constraint, so no day is billed twice. A child lease's
lines go on its parent's invoice. A CPI-linked lease whose rent waits for an index is held
(``cpi_waiting``), and its account gets no invoice for the period until the run again can
bill it whole; cycles held in earlier runs are caught up after its last rent line.

Utility lines: every posted apportionment amount not billed yet (see
:mod:`cloud.leases.utilities`), put on the invoice of the lease of that tenant and unit that
held the unit on the tenant's last day in the run. Late-fee lines: what accrued on the
account's overdue invoices (:func:`cloud.leases.dunning.late_fee`) before the period's first
day, less what was billed before.

Each line is rounded once, half up, to the cent (:mod:`cloud.leases.money`). The run makes
an invoice only for an account that has none for the period yet, so running it again
inserts nothing; on PostgreSQL it holds an advisory lock so two runs never interleave.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import NamedTuple

from sqlalchemy import and_, func, or_, select, text, tuple_
from sqlalchemy.orm import Session

from cloud.leases.dunning import late_fee
from cloud.leases.errors import ScheduleIncomplete
from cloud.leases.invoicing import LATE_FEE, RENT, UTILITY, Draft, write_invoices
from cloud.leases.models import (
    CreditEntry,
    Invoice,
    InvoiceLine,
    Lease,
    PaymentAllocation,
    RentStepRow,
)
from cloud.leases.money import round_half_up
from cloud.leases.periods import BillingPeriod, add_months, month_start, months_between
from cloud.leases.plans import schedule_of, store_plan, stored_steps
from cloud.leases.policies import load_book
from cloud.leases.reference import cpi_series
from cloud.leases.schedule import (
    CpiSeries,
    RentStep,
    cpi_months_missing,
    cycle_start,
    rent_for,
)
from cloud.leases.terms import CpiLinked
from cloud.leases.utilities import UtilityCharge, UtilityChargeSource
from cloud.registry.bulk import fetch_all, on_postgres

LATE_PAYMENT_LOOKBACK = timedelta(days=92)
"""Invoices paid late within this long before a period still get their final fee billed."""
_LOCK_KEY = 7_240_417  # pg_advisory_xact_lock key of the billing run
_WORK_MEM = "64MB"  # the run's sorts (utility charges, late fees) stay in memory


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
    cpi_waiting: tuple[tuple[str, date, tuple[date, ...]], ...] = ()
    """Of the held leases, those waiting for a CPI: (lease, the first day its rent is
    unknown, the months whose CPI it needs)."""


class _LeaseRow(NamedTuple):
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
    if on_postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        session.execute(text(f"SET LOCAL work_mem = '{_WORK_MEM}'"))
    billed = {
        lease_id
        for (lease_id,) in fetch_all(
            session, select(Invoice.lease_id).where(Invoice.period_start == period.start)
        )
    }
    running = and_(
        Lease.rent_from.is_not(None),
        Lease.rent_from < period.end,
        or_(Lease.ended_on.is_(None), Lease.ended_on > add_months(period.start, -12)),
    )
    leases = list(
        map(
            _LeaseRow._make,
            fetch_all(
                session,
                select(
                    Lease.id,
                    func.coalesce(func.nullif(Lease.parent_id, ""), Lease.id),
                    Lease.rent_from,
                    Lease.ended_on,
                    Lease.cycle_months,
                    Lease.plan_known_until,
                    Lease.due_days,
                    Lease.unit_id,
                    Lease.tenant_id,
                ).where(running),
            ),
        )
    )
    steps: dict[str, list[RentStep]] = defaultdict(list)
    for lease_id, starts_on, cents, free, source in fetch_all(
        session,
        select(
            RentStepRow.lease_id,
            RentStepRow.starts_on,
            RentStepRow.monthly_cents,
            RentStepRow.free,
            RentStepRow.source,
        )
        .join(Lease, Lease.id == RentStepRow.lease_id)
        .where(running)
        .order_by(RentStepRow.lease_id, RentStepRow.starts_on),
    ):
        steps[lease_id].append(RentStep(starts_on, cents, free, source))

    drafts: dict[str, Draft] = {}
    held: dict[str, str] = {}
    waiting: dict[str, tuple[date, tuple[date, ...]]] = {}
    already = {lease.account for lease in leases if lease.account in billed}
    spans: list[tuple[_LeaseRow, tuple[date, date]]] = []
    catch_ups: dict[str, tuple[_LeaseRow, tuple[date, date]]] = {}
    whole_cycle: dict[int, tuple[date, date]] = {}  # cycle months → [period start, cycle end)
    for lease in leases:
        if lease.account in billed:
            continue
        since = months_between(lease.rent_from, period.start)
        if since > lease.cycle_months and lease.ended_on is None:
            # rent began before this cycle and runs on: a whole cycle if one starts now
            # (what rent_segments says for it, without the catch-up's questions)
            if since % lease.cycle_months == 0:
                span = whole_cycle.get(lease.cycle_months)
                if span is None:
                    end = add_months(period.start, lease.cycle_months)
                    span = whole_cycle[lease.cycle_months] = (period.start, end)
                spans.append((lease, span))
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
    cpi_leases = [x for x in leases if x.account not in billed and _cpi_linked(x, steps)]
    spans = _cpi_gaps(session, cpi_leases, period, spans)
    cpi: CpiSeries | None = None
    billable = []
    for lease, span in spans:
        if lease.known_until is not None and span[1] > lease.known_until:
            cpi = cpi_series(session) if cpi is None else cpi
            try:
                steps[lease.id] = _extended_steps(session, lease.id, span[1], cpi)
            except ScheduleIncomplete as exc:
                held[lease.id] = str(exc)
                if exc.since is not None:
                    waiting[lease.id] = (exc.since, exc.cpi_months)
                continue
        billable.append((lease, span))
    _add_rents(drafts, billable, steps)

    unmatched = _add_utilities(
        session, drafts, billed, utilities.unbilled_charges(session, through=period.end), leases
    )
    _add_late_fees(session, drafts, billed, period)
    for lease, _span in spans:  # an account with a held lease waits to be billed whole
        if lease.id in held:
            drafts.pop(lease.account, None)
    report = write_invoices(
        session, drafts, period, issued_on, {lease.id: lease.due_days for lease in leases}
    )
    return BillingReport(
        period=period.label,
        already_billed=len(already),
        held=tuple(sorted(held.items())),
        unmatched=tuple(unmatched),
        cpi_waiting=tuple((k, *v) for k, v in sorted(waiting.items())),
        **report,
    )


def _cpi_linked(lease: _LeaseRow, steps: Mapping[str, Sequence[RentStep]]) -> bool:
    """Whether the lease's rent follows the CPI (its plan waits for one or rose by one)."""
    return lease.known_until is not None or any(s.source == "cpi" for s in steps[lease.id])


def _cpi_gaps(
    session: Session,
    leases: list[_LeaseRow],
    period: BillingPeriod,
    spans: list[tuple[_LeaseRow, tuple[date, date]]],
) -> list[tuple[_LeaseRow, tuple[date, date]]]:
    """``spans`` with the cycles of the CPI-linked ``leases`` held in earlier runs (from
    the end of the lease's last rent line to the period; a lease never billed has none)
    added, and those of their spans already billed (a period run again late) left out."""
    last: dict[str, date] = {}
    ids = [lease.id for lease in leases]
    for i in range(0, len(ids), 500):
        last.update(
            session.execute(
                select(InvoiceLine.lease_id, func.max(InvoiceLine.covers_to))
                .where(InvoiceLine.kind == RENT, InvoiceLine.lease_id.in_(ids[i : i + 500]))
                .group_by(InvoiceLine.lease_id)
            ).all()
        )
    out = [(x, span) for x, span in spans if x.id not in last or span[0] >= last[x.id]]
    taken = {(x.id, span[0]) for x, span in out}
    for lease in leases:
        day = last.get(lease.id)
        if day is None:
            continue
        day = max(day, lease.rent_from)
        start = cycle_start(lease.rent_from, lease.cycle_months, day)
        if start < day:
            start = add_months(start, lease.cycle_months)
        while start < period.start and (lease.ended_on is None or start < lease.ended_on):
            end = add_months(start, lease.cycle_months)
            end = min(end, lease.ended_on) if lease.ended_on else end
            if (lease.id, start) not in taken:
                out.append((lease, (start, end)))
            start = add_months(start, lease.cycle_months)
    return out


def _extended_steps(
    session: Session, lease_id: str, needed_until: date, cpi: CpiSeries
) -> list[RentStep]:
    """Recompile a CPI-linked plan with the published indices; raise ScheduleIncomplete if
    it still does not reach ``needed_until``."""
    lease = session.get(Lease, lease_id)
    assert lease is not None  # it was just selected
    plan = store_plan(session, lease, cpi)
    if plan.known_until is not None and needed_until > plan.known_until:
        rent, _free = schedule_of(lease)
        lag = rent.lag_months if isinstance(rent, CpiLinked) else 0
        months = cpi_months_missing(cpi, plan.known_until, lag)
        raise ScheduleIncomplete(
            f"lease {lease_id!r}: rent from {plan.known_until} on is "
            "CPI-linked and the index it needs is not published yet (CPI of "
            f"{', '.join(m.strftime('%Y-%m') for m in months)})",
            since=plan.known_until,
            cpi_months=months,
        )
    return list(plan.steps)


def _add_rents(
    drafts: dict[str, Draft],
    spans: Iterable[tuple[_LeaseRow, tuple[date, date]]],
    steps: Mapping[str, Sequence[RentStep]],
) -> None:
    """A rent line for each (lease, [from, to)) on its account's draft, unless it is 0.

    A span of whole months under one step (most leases, most months) is that step's rent ×
    the months, which is what :func:`rent_for` would say; the rest go through it."""
    wording: dict[tuple[date, date], str] = {}
    for lease, (a, b) in spans:
        plan = steps.get(lease.id, ())
        if (
            len(plan) == 1
            and a.day == 1
            and b.day == 1
            and plan[0].starts_on <= a
            and not plan[0].free
        ):
            cents = plan[0].monthly_cents * ((b.year - a.year) * 12 + b.month - a.month)
        else:
            cents = round_half_up(rent_for(plan, a, b))
        if cents == 0:
            continue
        draft = drafts.get(lease.account)
        if draft is None:
            draft = drafts[lease.account] = Draft(lease.account)
        span_text = wording.get((a, b))
        if span_text is None:
            span_text = wording[(a, b)] = f" {a.isoformat()} … {b.isoformat()}"
        draft.lines.append((lease.id, RENT, a, b, cents, None, f"rent {lease.id}{span_text}"))


def _rent_lines_billed(session: Session, keys: list[tuple[str, date]]) -> set[tuple[str, date]]:
    """Which of the (lease, first day) rent keys some invoice line carries already."""
    if not keys:
        return set()
    if on_postgres(session):  # one round trip, the keys as two arrays
        return set(
            fetch_all(
                session,
                text(
                    "SELECT l.lease_id, l.covers_from FROM invoice_lines AS l "
                    "JOIN unnest(CAST(:leases AS text[]), CAST(:days AS date[])) "
                    "AS k(lease_id, covers_from) "
                    "ON l.lease_id = k.lease_id AND l.covers_from = k.covers_from "
                    "WHERE l.kind = :kind"
                ),
                {"leases": [k[0] for k in keys], "days": [k[1] for k in keys], "kind": RENT},
            )
        )
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
    drafts: dict[str, Draft],
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
    held_by = [_holding(found.get((c.unit_id, c.party), {}).values(), c.last_day) for c in charges]
    missing = sorted(
        {(c.unit_id, c.party) for c, lease in zip(charges, held_by, strict=True) if lease is None}
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
    looked_up = set(missing)
    unmatched = []
    suffixes: dict[str, str] = {}
    for charge, holder in zip(charges, held_by, strict=True):
        chosen = holder
        if (charge.unit_id, charge.party) in looked_up:  # judged again with all its leases
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
            draft = drafts[account] = Draft(account)
        suffix = suffixes.get(charge.run_id)
        if suffix is None:  # the same for every charge of a run
            suffix = suffixes[charge.run_id] = (
                f" {charge.period_start.isoformat()} … {charge.period_end.isoformat()} "
                f"(run {charge.run_id})"
            )
        draft.lines.append(
            (
                lease_id,
                UTILITY,
                None,
                None,
                charge.cents,
                charge.run_id,
                f"utilities {charge.unit_id}{suffix}",
            )
        )
        draft.utilities.append(charge)
    return unmatched


def _holding(
    options: Iterable[tuple[str, str, date, date | None]], day: date
) -> tuple[str, str, date, date | None] | None:
    """The lease (id, account, rent from, ended on) that held the unit on ``day``: the
    latest to start among those running that day."""
    best = None
    for c in options:
        running = c[2] <= day and (c[3] is None or day < c[3])
        if running and (best is None or (c[2], c[0]) > (best[2], best[0])):
            best = c
    return best


def _add_late_fees(
    session: Session, drafts: dict[str, Draft], billed: set[str], period: BillingPeriod
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
    rules = load_book(session, period.start, {row[1] for row in overdue})
    for invoice_id, account, due_on, total, fees, fee_billed, _named in overdue:
        policy = rules.policy(account)
        accrued = late_fee(
            total - fees, due_on, paid[invoice_id], through=period.start, policy=policy.late_fee
        )
        owed = accrued - fee_billed
        if owed <= 0:
            continue
        draft = drafts.get(account)
        if draft is None:
            draft = drafts[account] = Draft(account)
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
