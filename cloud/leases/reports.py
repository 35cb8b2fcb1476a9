"""Lease reports (issue #18, decision 0035): occupancy, expiring leases, receivables aging and
the collections funnel, each within the caller's scope (sites, and buildings where the
account is limited to some) and bounded.

- **occupancy** — the one definition of :mod:`cloud.leases.occupancy` on a day, in total and
  by site, building and property type; over time: the month ends of a range (at most
  :data:`MAX_MONTHS`).
- **expiring** — :func:`cloud.leases.occupancy.expiring_report`: expired / ≤ 7 / ≤ 30 days.
- **aging** — outstanding money (total − what was allocated to the invoice by the day) of
  invoices issued by the day and past due on it, by days past due 0–30 / 31–60 / 61–90 /
  90+, per site and building [cents]. Roles that may not see arrears
  (:mod:`cloud.staff.visibility`) get the invoice counts only; the amounts are withheld.
- **collections** — invoices that became overdue in a period (their due day + 1 falls in it
  and they were not paid in full by the due day): how many reached each step of the ladder
  (:data:`cloud.leases.dunning.LADDER`, plus any further action recorded such as a legal
  hand-over) and how many were paid in full after each step (the last step they reached),
  as the ledger stands.

Every figure comes from grouped SQL (``GROUP BY`` with ``CASE``) or from the occupancy
service's set queries; nothing loops over leases with a query each, except the paid-through
date of the few leases whose contract ends within 30 days. Who may read which report is
:data:`REPORT_ROLES` (the web's route policies admit the same roles). Money in integer cents,
rates as Decimals (4 places), days local (Asia/Shanghai).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Select, case, func, literal, or_, select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.dunning import LADDER
from cloud.leases.errors import LeaseError
from cloud.leases.models import (
    PROPERTY_TYPES,
    CollectionEvent,
    Invoice,
    Lease,
    PaymentAllocation,
    UnitProfile,
)
from cloud.leases.occupancy import (
    RISKS,
    ExpiringRow,
    OccupancyReport,
    UnitOccupancy,
    expiring_report,
    summarize,
    unit_occupancy,
)
from cloud.leases.periods import add_months
from cloud.leases.roster import LeaseDesk, scope_condition
from cloud.staff.accounts import LEASE_ROLES, RISK_ROLES, Principal, Role
from cloud.staff.visibility import Sensitive, sees

#: The most month ends an occupancy series covers.
MAX_MONTHS = 36
#: The longest collections period [days].
MAX_PERIOD_DAYS = 366
#: Days this side of which a report day must lie.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2100, 12, 31)
#: Aging buckets: name, most days past due (None: no upper bound).
AGING_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("0-30", 30),
    ("31-60", 60),
    ("61-90", 90),
    ("90+", None),
)


class Report(StrEnum):
    OCCUPANCY = "occupancy"
    EXPIRING = "expiring"
    AGING = "aging"
    COLLECTIONS = "collections"


#: Who reads which report (decision 0035): expiring leases and the aging (amounts as
#: :mod:`cloud.staff.visibility` allows) for every lease role; occupancy and the collections
#: funnel for all of them but legal.
REPORT_ROLES: dict[Report, frozenset[Role]] = {
    Report.OCCUPANCY: RISK_ROLES,
    Report.EXPIRING: LEASE_ROLES,
    Report.AGING: LEASE_ROLES,
    Report.COLLECTIONS: RISK_ROLES,
}


class ReportError(LeaseError):
    """A report asked for with bad parameters (a day out of range, a range too long)."""


class ReportForbidden(LeaseError):
    """The caller's role does not read that report."""


def reports_for(role: Role) -> list[Report]:
    """The reports ``role`` may read, in the index's order."""
    return [r for r in Report if role in REPORT_ROLES[r]]


def check_role(who: Principal, report: Report) -> None:
    """ReportForbidden unless ``who``'s role reads ``report``."""
    if who.role not in REPORT_ROLES[report]:
        raise ReportForbidden(f"the {who.role.value} role does not read the {report} report")


@dataclass(frozen=True)
class Filters:
    """What a report is narrowed to (None: no narrowing); always within the caller's scope."""

    site: str | None = None
    building: str | None = None
    property_type: str | None = None

    def __post_init__(self) -> None:
        for name in ("site", "building"):
            value = getattr(self, name)
            if value is not None and not 1 <= len(value) <= 64:
                raise ReportError(f"{name}: expected 1 to 64 characters, got {len(value)}")
        if self.property_type is not None and self.property_type not in PROPERTY_TYPES:
            raise ReportError(
                f"type {self.property_type[:20]!r}: expected one of {', '.join(PROPERTY_TYPES)}"
            )


_unit_kind = func.coalesce(UnitProfile.property_type, literal("residential"))


def units_in_scope(who: Principal, filters: Filters) -> Select[Any]:
    """A subquery of the ids of the units ``who`` may see, narrowed by ``filters``."""
    q = select(Unit.id).outerjoin(UnitProfile, UnitProfile.unit_id == Unit.id)
    scope = scope_condition(who)
    if scope is not None:
        q = q.where(scope)
    if filters.site is not None:
        q = q.where(Unit.site_id == filters.site)
    if filters.building is not None:
        q = q.where(Unit.building == filters.building)
    if filters.property_type is not None:
        q = q.where(_unit_kind == filters.property_type)
    return q


def check_day(day: date, name: str = "date") -> date:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ReportError(f"{name} {day}: expected a day from {FIRST_DAY} to {LAST_DAY}")
    return day


def month_ends(first: date, last: date) -> list[date]:
    """The last days of the months from ``first``'s to ``last``'s (at most MAX_MONTHS); the
    last month's is ``last`` itself when its month is not over by then (no figure is given
    for a day after the range)."""
    check_day(first, "from")
    check_day(last, "to")
    if last < first:
        raise ReportError(f"from {first} is after to {last}: expected from ≤ to")
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    if months > MAX_MONTHS:
        raise ReportError(f"from {first} to {last} spans {months} months, at most {MAX_MONTHS}")
    start = first.replace(day=1)
    ends = [add_months(start, i + 1) - timedelta(days=1) for i in range(months)]
    ends[-1] = min(ends[-1], last)
    return ends


# ----------------------------------------------------------------------------- occupancy


class OccupancyGroup(BaseModel):
    """Occupancy of one group of units: by ``site``, ``building`` (of a site) or ``type``."""

    by: str
    site_id: str = ""
    building: str = ""
    property_type: str = ""
    figures: OccupancyReport


class OccupancyOut(BaseModel):
    """Occupancy on ``day`` in total and by group; ``series``: the total at month ends."""

    day: date
    total: OccupancyReport
    groups: list[OccupancyGroup]
    series: list[OccupancyReport] = []


def _groups(day: date, units: list[UnitOccupancy]) -> list[OccupancyGroup]:
    by: dict[tuple[str, str, str, str], list[UnitOccupancy]] = defaultdict(list)
    for u in units:
        by[("site", u.site_id, "", "")].append(u)
        by[("building", u.site_id, u.building, "")].append(u)
        by[("type", "", "", u.property_type)].append(u)
    order = {"site": 0, "building": 1, "type": 2}
    return [
        OccupancyGroup(
            by=k[0], site_id=k[1], building=k[2], property_type=k[3], figures=summarize(day, v)
        )
        for k, v in sorted(by.items(), key=lambda kv: (order[kv[0][0]], kv[0][1:]))
    ]


def occupancy_report(
    session: Session,
    who: Principal,
    day: date,
    filters: Filters = Filters(),
    *,
    series: tuple[date, date] | None = None,
) -> OccupancyOut:
    """Occupancy of ``who``'s units (narrowed by ``filters``) on ``day``, by site, building
    and property type; with ``series`` = (from, to), also the total at each month end."""
    check_role(who, Report.OCCUPANCY)
    check_day(day)
    ends = month_ends(*series) if series else []
    units_q = units_in_scope(who, filters)
    units = unit_occupancy(session, day, units=units_q)
    return OccupancyOut(
        day=day,
        total=summarize(day, units),
        groups=_groups(day, units),
        series=[summarize(end, unit_occupancy(session, end, units=units_q)) for end in ends],
    )


# ----------------------------------------------------------------------------- expiring


class ExpiringOut(BaseModel):
    """Leases expired or expiring within 30 days of ``day``, and how many per tier."""

    day: date
    counts: dict[str, int]
    leases: list[ExpiringRow]


def expiring(
    session: Session, who: Principal, day: date, filters: Filters = Filters()
) -> ExpiringOut:
    """The expiring report of ``who``'s leases (narrowed by ``filters``) on ``day``."""
    check_role(who, Report.EXPIRING)
    check_day(day)
    rows = expiring_report(session, day, units=units_in_scope(who, filters))
    counts = {risk: sum(1 for r in rows if r.risk == risk) for risk in RISKS}
    return ExpiringOut(day=day, counts=counts, leases=rows)


# ----------------------------------------------------------------------------- aging


class AgingRow(BaseModel):
    """Outstanding money of one site's building by bucket [cents; None: withheld from the
    role] and the invoices in each bucket."""

    site_id: str
    building: str
    cents: dict[str, int | None]
    invoices: dict[str, int]
    total_cents: int | None
    total_invoices: int


class AgingOut(BaseModel):
    day: date
    buckets: list[str]
    withheld: list[str]
    rows: list[AgingRow]
    total: AgingRow


def _bucket(day: date) -> Any:
    whens = [
        (Invoice.due_on >= day - timedelta(days=most), name)
        for name, most in AGING_BUCKETS
        if most is not None
    ]
    return case(*whens, else_=literal(AGING_BUCKETS[-1][0]))


def aging(session: Session, who: Principal, day: date, filters: Filters = Filters()) -> AgingOut:
    """Receivables aging of ``who``'s units (narrowed by ``filters``) on ``day``."""
    check_role(who, Report.AGING)
    check_day(day)
    paid = (
        select(
            PaymentAllocation.invoice_id.label("invoice_id"),
            func.sum(PaymentAllocation.cents).label("cents"),
        )
        .where(PaymentAllocation.allocated_on <= day)
        .group_by(PaymentAllocation.invoice_id)
        .subquery()
    )
    owed = Invoice.total_cents - func.coalesce(paid.c.cents, 0)
    bucket = _bucket(day).label("bucket")
    rows = session.execute(
        select(Unit.site_id, Unit.building, bucket, func.sum(owed), func.count(Invoice.id))
        .select_from(Invoice)
        .join(Lease, Lease.id == Invoice.lease_id)
        .join(Unit, Unit.id == Lease.unit_id)
        .outerjoin(paid, paid.c.invoice_id == Invoice.id)
        .where(
            Lease.unit_id.in_(units_in_scope(who, filters)),
            Invoice.issued_on <= day,
            Invoice.due_on < day,
            owed > 0,
        )
        .group_by(Unit.site_id, Unit.building, bucket)
    ).all()
    money = sees(who.role, Sensitive.ARREARS)
    names = [name for name, _ in AGING_BUCKETS]
    cells: dict[tuple[str, str], dict[str, tuple[int, int]]] = defaultdict(dict)
    for site, building, name, cents, count in rows:
        cells[(site, building or "")][name] = (int(cents), int(count))

    def row(site: str, building: str, got: dict[str, tuple[int, int]]) -> AgingRow:
        cents = {n: got.get(n, (0, 0))[0] for n in names}
        return AgingRow(
            site_id=site,
            building=building,
            cents={n: c if money else None for n, c in cents.items()},
            invoices={n: got.get(n, (0, 0))[1] for n in names},
            total_cents=sum(cents.values()) if money else None,
            total_invoices=sum(got.get(n, (0, 0))[1] for n in names),
        )

    total: dict[str, tuple[int, int]] = {}
    for got in cells.values():
        for n, (c, k) in got.items():
            tc, tk = total.get(n, (0, 0))
            total[n] = (tc + c, tk + k)
    return AgingOut(
        day=day,
        buckets=names,
        withheld=[] if money else [Sensitive.ARREARS.value],
        rows=[row(s, b, cells[(s, b)]) for s, b in sorted(cells)],
        total=row("", "", total),
    )


# ----------------------------------------------------------------------------- collections


class FunnelStep(BaseModel):
    """A rung of the ladder: ``step`` days after the due day, its action; invoices of the
    period that reached it, and those paid in full after it (it was their last rung)."""

    step: int
    action: str
    reached: int
    paid_after: int


class FunnelOut(BaseModel):
    """The collections funnel of invoices that became overdue from ``first`` to ``last``
    (inclusive): how many, how many paid before the first rung, per rung, still owed."""

    first: date
    last: date
    overdue: int
    paid_before_steps: int
    steps: list[FunnelStep]
    paid: int
    unpaid: int


def collections(
    session: Session, who: Principal, first: date, last: date, filters: Filters = Filters()
) -> FunnelOut:
    """The collections funnel of ``who``'s units (narrowed by ``filters``) for invoices
    whose first overdue day falls in [``first``, ``last``]."""
    check_role(who, Report.COLLECTIONS)
    check_day(first, "from")
    check_day(last, "to")
    if last < first or (last - first).days >= MAX_PERIOD_DAYS:
        raise ReportError(
            f"from {first} to {last}: expected from ≤ to, at most {MAX_PERIOD_DAYS} days"
        )
    overdue = (
        select(Invoice.id.label("id"), Invoice.paid_on.label("paid_on"))
        .join(Lease, Lease.id == Invoice.lease_id)
        .where(
            Lease.unit_id.in_(units_in_scope(who, filters)),
            Invoice.due_on >= first - timedelta(days=1),
            Invoice.due_on <= last - timedelta(days=1),
            Invoice.total_cents > 0,
            or_(Invoice.paid_on.is_(None), Invoice.paid_on > Invoice.due_on),
        )
        .subquery()
    )
    count, paid = session.execute(
        select(func.count(overdue.c.id), func.count(overdue.c.paid_on))
    ).one()
    reached = {
        (step, action): int(n)
        for step, action, n in session.execute(
            select(CollectionEvent.step, CollectionEvent.action, func.count())
            .join(overdue, overdue.c.id == CollectionEvent.invoice_id)
            .group_by(CollectionEvent.step, CollectionEvent.action)
        )
    }
    top = (
        select(
            CollectionEvent.invoice_id.label("invoice_id"),
            func.max(CollectionEvent.step).label("step"),
        )
        .join(overdue, overdue.c.id == CollectionEvent.invoice_id)
        .group_by(CollectionEvent.invoice_id)
        .subquery()
    )
    paid_after = {  # paid in full after the rung that was their last
        int(step): int(n)
        for step, n in session.execute(
            select(top.c.step, func.count(overdue.c.paid_on))
            .join(overdue, overdue.c.id == top.c.invoice_id)
            .group_by(top.c.step)
        )
    }
    rungs = {(s.days, s.action) for s in LADDER} | set(reached)
    steps = [
        FunnelStep(
            step=step,
            action=action,
            reached=reached.get((step, action), 0),
            paid_after=paid_after.get(step, 0),
        )
        for step, action in sorted(rungs)
    ]
    return FunnelOut(
        first=first,
        last=last,
        overdue=int(count),
        paid_before_steps=int(paid) - sum(paid_after.values()),
        steps=steps,
        paid=int(paid),
        unpaid=int(count) - int(paid),
    )


# ----------------------------------------------------------------------------- the set


@dataclass
class ReportSet:
    """The four reports of a site for a month (the monthly e-mail): occupancy on the month's
    last day with the year up to it, expiring and aging on that day, the month's funnel."""

    site: str
    month: date
    occupancy: OccupancyOut
    expiring: ExpiringOut
    aging: AgingOut
    collections: FunnelOut


def month_set(session: Session, who: Principal, site: str, month: date) -> ReportSet:
    """The reports of ``site`` for the calendar month starting ``month``."""
    last = add_months(month.replace(day=1), 1) - timedelta(days=1)
    f = Filters(site=site)
    return ReportSet(
        site=site,
        month=month.replace(day=1),
        occupancy=occupancy_report(
            session, who, last, f, series=(add_months(month.replace(day=1), -11), last)
        ),
        expiring=expiring(session, who, last, f),
        aging=aging(session, who, last, f),
        collections=collections(session, who, month.replace(day=1), last, f),
    )


class ReportService(LeaseDesk):
    """The reports for the web and the commands: each call opens its own read session;
    "today" is the local calendar day of the service's clock."""

    def occupancy(
        self,
        who: Principal,
        day: date,
        filters: Filters = Filters(),
        series: tuple[date, date] | None = None,
    ) -> OccupancyOut:
        with self.sessions() as session:
            return occupancy_report(session, who, day, filters, series=series)

    def expiring(self, who: Principal, day: date, filters: Filters = Filters()) -> ExpiringOut:
        with self.sessions() as session:
            return expiring(session, who, day, filters)

    def aging(self, who: Principal, day: date, filters: Filters = Filters()) -> AgingOut:
        with self.sessions() as session:
            return aging(session, who, day, filters)

    def collections(
        self, who: Principal, first: date, last: date, filters: Filters = Filters()
    ) -> FunnelOut:
        with self.sessions() as session:
            return collections(session, who, first, last, filters)
