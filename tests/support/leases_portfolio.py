"""Lease test support: builders of sites, units, people and running leases, posted utility
runs, a recording channel, and a simulated portfolio run day by day through the daily job and
the monthly billing run.

The registry fixtures (``lease_db``, ``lease_pg``) live in tests/leases/conftest.py.
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.models import ApportionLine, ApportionRun, Unit
from cloud.leases import deposits, lifecycle, offers, payments, reference, renewals
from cloud.leases.billing import BillingReport
from cloud.leases.errors import RenewalBlocked
from cloud.leases.jobs import DailyReport, run_daily, run_monthly_billing
from cloud.leases.models import (
    CollectionEvent,
    Invoice,
    InvoiceLine,
    Lease,
    RenewalReminder,
    RepairComplaint,
    Staff,
)
from cloud.leases.periods import BillingPeriod, add_months
from cloud.leases.terms import (
    FixedRent,
    FreeRent,
    LeaseTerms,
    PercentRise,
    RentSchedule,
    SteppedRent,
)
from cloud.notify.channels import Notification
from cloud.registry.service import ensure_site

SITE = "S1"
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def clock() -> datetime:
    return T0


# ------------------------------------------------------------------ builders


@dataclass(frozen=True)
class UnitSpec:
    """A unit to seed: area [m²], asking rent [cents per month]."""

    id: str
    building: str = "A"
    unit_type: str = "1BR"
    area: Decimal = Decimal(50)
    asking_cents: int = 500_000
    rentable: bool = True


def seed_site(session: Session, units: list[UnitSpec], *, tenants: int = 0) -> None:
    """Site S1 with ``units``, a supervisor ``boss`` and a manager ``m1`` reporting to them,
    and tenants T1..Tn (e-mail t<n>@tenants.test)."""
    ensure_site(session, SITE)
    session.flush()
    for u in units:
        session.add(Unit(id=u.id, site_id=SITE, area_m2=u.area, building=u.building, floor="1"))
    session.flush()
    for u in units:
        reference.set_unit_profile(
            session, u.id, u.unit_type, rentable=u.rentable, asking_cents=u.asking_cents
        )
    if session.get(Staff, "boss") is None:
        reference.add_staff(session, "boss", "Supervisor", address="boss@staff.test")
        session.flush()
        reference.add_staff(session, "m1", "Manager", address="m1@staff.test", supervisor_id="boss")
    for n in range(1, tenants + 1):
        reference.add_tenant(session, f"T{n}", f"Tenant {n}", address=f"t{n}@tenants.test")
    session.flush()


def terms(
    lease_id: str,
    unit: str,
    tenant: str,
    start: date,
    end: date,
    *,
    monthly_cents: int = 500_000,
    rent: RentSchedule | None = None,
    **kw: object,
) -> LeaseTerms:
    """Lease terms with a fixed rent unless ``rent`` says otherwise."""
    return LeaseTerms.model_validate(
        {
            "id": lease_id,
            "tenant_id": tenant,
            "unit_id": unit,
            "manager_id": "m1",
            "start_on": start,
            "end_on": end,
            "rent": rent or FixedRent(monthly_cents=monthly_cents),
            **kw,
        }
    )


def running_lease(
    session: Session,
    lease_terms: LeaseTerms,
    *,
    signed_on: date | None = None,
    handover_on: date | None = None,
) -> Lease:
    """Create, sign and hand over a lease (signed a month before the start, handed over on
    the start unless given)."""
    signed = signed_on or lease_terms.start_on - timedelta(days=30)
    lifecycle.create_lease(session, lease_terms, by="agent", today=signed, clock=clock)
    lifecycle.sign(session, lease_terms.id, on=signed, by="agent", clock=clock)
    return lifecycle.hand_over(
        session, lease_terms.id, on=handover_on or lease_terms.start_on, by="agent", clock=clock
    )


def post_utility_run(
    session: Session,
    start: date,
    end: date,
    charges: Mapping[tuple[str, str], int],
    *,
    landlord_cents: int = 0,
    status: str = "posted",
) -> str:
    """A posted apportionment run of site S1 for [start, end) with one line per (unit,
    tenant) [cents] and a landlord line, as ``cloud.apportion`` stores them."""
    run_id = str(uuid.uuid4())
    session.add(
        ApportionRun(
            id=run_id,
            site_id=SITE,
            period_start=start,
            period_end=end,
            status=status,
            input_hash="0" * 64,
            result_hash="0" * 64,
            inputs="{}",
            flags=[],
            held=False,
            created_by="sim",
            created_at=T0,
            posted_by="sim",
            posted_at=T0,
        )
    )
    session.flush()
    lines = [((unit, tenant), cents) for (unit, tenant), cents in sorted(charges.items())]
    if landlord_cents:
        lines.append((("", "landlord"), landlord_cents))
    for n, ((unit, party), cents) in enumerate(lines):
        session.add(
            ApportionLine(
                run_id=run_id,
                line_no=n,
                kind="charge",
                adjusts_run_id=None,
                register="total",
                tariff="flat",
                unit=unit,
                party=party,
                from_=start.isoformat() if unit else "",
                to=end.isoformat() if unit else "",
                component="own",
                origin="",
                kwh=Decimal("1.000000"),
                cents=cents,
            )
        )
    session.flush()
    return run_id


class RecordingChannel:
    """A channel that keeps what it is given (for counting deliveries per key)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def send(self, message: Notification) -> None:
        self.sent.append(message)


def invoice_kinds(session: Session, invoice_id: str) -> dict[str, int]:
    """Σ cents of an invoice's lines per kind."""
    out: dict[str, int] = defaultdict(int)
    for kind, cents in session.execute(
        select(InvoiceLine.kind, InvoiceLine.cents).where(InvoiceLine.invoice_id == invoice_id)
    ):
        out[kind] += cents
    return dict(out)


def table_counts(session: Session) -> dict[str, int]:
    """Rows per lease table (and the outbox): equal before and after an idempotent rerun."""
    from cloud.registry.base import Base

    names = [
        t
        for t in Base.metadata.tables
        if not t.startswith(("apportion", "meter", "source_bill", "tariff"))
    ]
    return {
        name: session.scalar(select(func.count()).select_from(Base.metadata.tables[name]))
        for name in sorted(names)
    }


# ------------------------------------------------------------------ the simulated year


@dataclass
class SimulationResult:
    """What a simulated year did, for the assertions."""

    channel: RecordingChannel
    bills: list[BillingReport] = field(default_factory=list)
    bill_reruns: list[int] = field(default_factory=list)  # invoices a same-day rerun made
    dailies: list[DailyReport] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    last_day: date = date(2026, 1, 1)
    refunds_due: dict[str, date] = field(default_factory=dict)  # lease → move-out day


def simulate_year(
    sessions: sessionmaker[Session],
    *,
    start: date = date(2026, 1, 1),
    units: int = 160,
    seed: int = 7,
) -> SimulationResult:
    """A portfolio of ``units`` units (buildings A–D, two unit types), ~85 % let at the
    start with leases ending throughout the year, run day by day for a year: move-ins,
    move-outs, punctual / late / partial / over- / quarterly payers, renewals by offer and
    auto-renewal, open-ended stays, repair complaints, deposit refunds (some slow), posted
    utility runs each month, the monthly billing run on the 1st and the daily run every
    day, with every notice delivered to a recording channel."""
    rng = random.Random(seed)
    specs = [
        UnitSpec(
            f"U{n:03d}",
            building="ABCD"[n % 4],
            unit_type=("1BR", "2BR")[n % 2],
            area=Decimal(45 if n % 2 == 0 else 70),
            asking_cents=450_000 if n % 2 == 0 else 680_000,
        )
        for n in range(units)
    ]
    behaviour: dict[str, str] = {}
    tenant_no = 0
    channel = RecordingChannel()
    result = SimulationResult(channel)

    def new_tenant(session: Session) -> str:
        nonlocal tenant_no
        tenant_no += 1
        tenant = f"T{tenant_no:04d}"
        reference.add_tenant(
            session, tenant, f"Tenant {tenant_no}", address=f"{tenant.lower()}@tenants.test"
        )
        behaviour[tenant] = rng.choices(["punctual", "late", "partial", "over"], [70, 15, 8, 7])[0]
        return tenant

    def lease_for(
        session: Session, lease_id: str, spec: UnitSpec, begin: date, months: int
    ) -> LeaseTerms:
        base = spec.asking_cents + rng.randrange(-5, 6) * 1000
        kind = rng.choices(["standard", "trial", "internal"], [92, 5, 3])[0]
        schedule: RentSchedule = FixedRent(monthly_cents=base)
        extra: dict[str, object] = {}
        pick = rng.random()
        if pick < 0.15:
            schedule = SteppedRent(
                steps=[
                    {"from": begin, "monthly_cents": base},
                    {"from": add_months(begin, 6), "monthly_cents": base + 20_000},
                ]
            )
        elif pick < 0.3:
            schedule = PercentRise(monthly_cents=base, rise=Decimal("0.03"), every_months=6)
        if rng.random() < 0.15:
            extra["free_rent"] = [FreeRent(months=1, anchor="handover")]
        if rng.random() < 0.15:
            extra["cycle_months"] = 3
        if rng.random() < 0.3:
            extra["auto_renew"] = True
        return terms(
            lease_id,
            spec.id,
            new_tenant(session),
            begin,
            add_months(begin, months),
            rent=schedule,
            kind=kind,
            **extra,
        )

    with sessions.begin() as session:
        seed_site(session, specs)
        for n, spec in enumerate(specs):
            if rng.random() < 0.15:
                continue
            begin = add_months(start, -rng.randrange(1, 12)) - timedelta(days=rng.randrange(0, 20))
            lease_terms = lease_for(session, f"L{n:03d}", spec, begin, 12)
            running_lease(
                session,
                lease_terms,
                handover_on=begin + timedelta(days=rng.choice([0, 0, 0, 3, 9])),
            )
    vacant_since: dict[str, date] = {}
    leaving: set[str] = set()
    next_lease = 1000
    day = start
    end = add_months(start, 12)
    while day < end:
        with sessions.begin() as session:
            _simulate_day(session, day, rng, behaviour, specs, vacant_since, leaving, result)
            # move-ins into units vacant for a while
            for unit_id, since in sorted(vacant_since.items()):
                if (day - since).days >= 10 and rng.random() < 0.08:
                    spec = next(s for s in specs if s.id == unit_id)
                    next_lease += 1
                    lease_terms = lease_for(
                        session,
                        f"L{next_lease}",
                        spec,
                        day + timedelta(days=5),
                        rng.choice([6, 12]),
                    )
                    running_lease(
                        session,
                        lease_terms,
                        signed_on=day,
                        handover_on=day + timedelta(days=rng.choice([5, 8])),
                    )
                    del vacant_since[unit_id]
                    result.counters["move_in"] += 1
        if day.day == 1:
            result.bills.append(run_monthly_billing(sessions, BillingPeriod.of(day), today=day))
            result.bill_reruns.append(
                run_monthly_billing(sessions, BillingPeriod.of(day), today=day).invoices
            )
        report = run_daily(sessions, day, channels={"email": channel})
        result.dailies.append(report)
        result.counters["auto_renewed"] += len(report.expiries.auto_renewed)
        result.counters["open_ended"] += len(report.expiries.open_ended)
        result.counters["escalations"] += report.escalations
        result.counters["sla_flags"] += report.sla_flags
        result.last_day = day
        day += timedelta(days=1)
    return result


def _simulate_day(
    session: Session,
    day: date,
    rng: random.Random,
    behaviour: dict[str, str],
    specs: list[UnitSpec],
    vacant_since: dict[str, date],
    leaving: set[str],
    result: SimulationResult,
) -> None:
    """One day of tenants and staff: payments, utilities, renewals, move-outs, deposits."""
    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=2)
    # payments on open invoices, by behaviour
    for invoice, lease in session.execute(
        select(Invoice, Lease)
        .join(Lease, Lease.id == Invoice.lease_id)
        .where(Invoice.status == "open")
        .order_by(Invoice.id)
    ).all():
        owed = invoice.total_cents - invoice.paid_cents
        kind = behaviour.get(lease.tenant_id, "punctual")
        pay_day = {
            "punctual": invoice.due_on - timedelta(days=2),
            "late": invoice.due_on + timedelta(days=6 + _stable(invoice.id) % 20),
            "partial": invoice.due_on,
            "over": invoice.due_on - timedelta(days=1),
        }[kind]
        if day < pay_day:
            continue
        cents = owed
        if kind == "partial" and invoice.paid_cents == 0:
            cents = owed // 2
        elif kind == "partial" and day < pay_day + timedelta(days=9):
            continue
        elif kind == "over":
            cents = owed + owed // 10
        payments.record_payment(
            session,
            lease.id,
            cents=cents,
            received_on=day,
            ref=f"bank-{invoice.id}-{invoice.paid_cents}",
        )
        result.counters[f"payment_{kind}"] += 1
    # utilities of the previous month, posted on the 3rd
    if day.day == 3:
        period = BillingPeriod.of(day).previous()
        charges = {}
        for lease in session.scalars(
            select(Lease)
            .where(
                Lease.rent_from.is_not(None),
                Lease.rent_from < period.end,
                (Lease.ended_on.is_(None)) | (Lease.ended_on > period.start),
            )
            .order_by(Lease.id)
        ):
            charges[(lease.unit_id, lease.tenant_id)] = rng.randrange(5_000, 40_000)
        if charges:
            post_utility_run(
                session,
                period.start,
                period.end,
                charges,
                landlord_cents=rng.randrange(1_000, 9_000),
            )
            result.counters["utility_runs"] += 1
    # repair complaints open and close
    if rng.random() < 0.1:
        lease = session.scalars(
            select(Lease).where(Lease.status == "active").order_by(Lease.id)
        ).all()
        if lease:
            pick = rng.choice(lease)
            session.add(
                RepairComplaint(
                    tenant_id=pick.tenant_id,
                    unit_id=pick.unit_id,
                    opened_on=day,
                    summary="leaking tap",
                )
            )
    for complaint in session.scalars(
        select(RepairComplaint)
        .where(
            RepairComplaint.resolved_on.is_(None),
            RepairComplaint.opened_on <= day - timedelta(days=20),
        )
        .order_by(RepairComplaint.id)
    ):
        complaint.resolved_on = day
    # managers: acknowledge most reminders within a few days, decide on renewals
    for reminder in session.scalars(
        select(RenewalReminder)
        .where(
            RenewalReminder.kind == "reminder",
            RenewalReminder.acknowledged_at.is_(None),
            RenewalReminder.outcome != "superseded",
        )
        .order_by(RenewalReminder.lease_id, RenewalReminder.offset_days)
    ).all():
        if (day - reminder.sent_on).days >= 2 and rng.random() < 0.25:
            renewals.acknowledge_reminders(session, reminder.lease_id, by="m1", at=at)
    for lease in session.scalars(
        select(Lease).where(Lease.status.in_(["expiring", "open_ended"])).order_by(Lease.id)
    ).all():
        days_left = (lease.end_on - day).days
        if lease.id in leaving:
            if day >= lease.end_on:
                lifecycle.terminate(
                    session,
                    lease.id,
                    on=lease.end_on if lease.status == "expiring" else day,
                    today=day,
                    by="m1",
                    reason="tenant moved out",
                    clock=clock,
                )
                leaving.discard(lease.id)
                _moved_out(session, lease, day, vacant_since, result)
            continue
        if days_left == 20 and not lease.auto_renew:
            choice = rng.random()
            if choice < 0.45:
                suggestion = renewals.suggest_prices(session, day, [lease.id]).get(lease.id)
                if suggestion is not None:
                    price = (
                        suggestion.suggested_cents
                        if rng.random() < 0.85
                        else suggestion.band_high_cents + 50_000
                    )
                    try:
                        offer = renewals.make_offer(
                            session, lease.id, price, by="m1", today=day, at=at
                        )
                        if offer.flagged:  # outside the band: the supervisor approves
                            offers.decide(session, offer.id, approve=True, by="boss", at=at)
                        renewals.accept_offer(session, offer.id, by="m1", today=day)
                        result.counters["renewed_by_offer"] += 1
                        result.counters["offers_flagged"] += offer.flagged
                    except RenewalBlocked:
                        result.counters["renewal_blocked"] += 1
            elif choice < 0.8:
                leaving.add(lease.id)
        if lease.status == "open_ended" and rng.random() < 0.02:
            lifecycle.terminate(
                session,
                lease.id,
                on=day + timedelta(days=7),
                today=day,
                by="m1",
                reason="open-ended stay ended",
                clock=clock,
            )
            _moved_out(session, lease, day + timedelta(days=7), vacant_since, result)
    # an early termination now and then
    if rng.random() < 0.05:
        active = session.scalars(
            select(Lease)
            .where(Lease.status == "active", Lease.parent_id.is_(None))
            .order_by(Lease.id)
        ).all()
        if active:
            lease = rng.choice(active)
            lifecycle.terminate(
                session,
                lease.id,
                on=day + timedelta(days=10),
                today=day,
                by="m1",
                reason="early termination",
                clock=clock,
            )
            _moved_out(session, lease, day + timedelta(days=10), vacant_since, result)
    # deposit refunds: requested on the move-out day, then moving along, a few slowly
    for lease_id, on in sorted(result.refunds_due.items()):
        if on <= day:
            deposits.request_refund(session, lease_id, by="m1", at=at)
            del result.refunds_due[lease_id]
    for refund in session.scalars(
        select(deposits.DepositRefund)
        .where(deposits.DepositRefund.state != "paid")
        .order_by(deposits.DepositRefund.id)
    ).all():
        slow = _stable(refund.lease_id) % 5 == 0
        if slow and rng.random() < 0.7:
            continue
        step_at = at + timedelta(hours=3)
        if refund.state == "requested":
            deposits.inspect_unit(session, refund.id, by="inspector", at=step_at)
        elif refund.state == "inspected":
            deposits.settle(session, refund.id, by="finance", at=step_at)
        elif refund.state == "settled":
            deposits.approve(session, refund.id, by="controller", at=step_at)
        elif refund.state == "approved":
            deposits.pay(session, refund.id, by="finance", at=step_at)


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def _moved_out(
    session: Session,
    lease: Lease,
    on: date,
    vacant_since: dict[str, date],
    result: SimulationResult,
) -> None:
    vacant_since[lease.unit_id] = on
    result.counters["move_out"] += 1
    if lease.deposit_cents:
        result.refunds_due[lease.id] = on


def collection_steps(session: Session, invoice_id: str) -> dict[int, date]:
    """The collections events of an invoice: step → the day it happened."""
    return dict(
        session.execute(
            select(CollectionEvent.step, CollectionEvent.happened_on).where(
                CollectionEvent.invoice_id == invoice_id
            )
        ).all()
    )
