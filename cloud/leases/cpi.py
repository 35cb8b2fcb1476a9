"""The CPI series as operators keep it (decision 0042): enter one month, import a CSV, see
the series and the CPI-linked leases waiting for a month.

A month's figure is a year-on-year one (``yoy``, 上年同月=100, what the National Bureau of
Statistics publishes monthly) or a fixed-base level (``level``, 定基); how a rent uses either
is :func:`cloud.leases.schedule.cpi_rise`. A month stored with another figure is changed
only as a correction (``correct`` and a note), and never when an issued invoice's rent used
it (the lease and invoice are named). Every change is audited (``cpi:YYYY-MM``) in the same
transaction, and the plans of the CPI-linked leases are compiled again, so the next billing
run bills past an adjustment that waited for the month.

Admin and finance keep the series (:data:`CPI_ROLES`); the waiting leases are those of the
caller's sites. Money is integer cents; days and months are local calendar ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases.cpi_file import CpiEntry, parse_entry, read_cpi_csv
from cloud.leases.errors import CpiError, NotPermitted
from cloud.leases.invoicing import RENT
from cloud.leases.models import CpiIndex, InvoiceLine, Lease, RentStepRow, Tenant
from cloud.leases.plans import plan_for, schedule_of, store_plan
from cloud.leases.reference import cpi_series
from cloud.leases.roster import LeaseDesk, scope_condition
from cloud.leases.schedule import CpiSeries, cpi_months_missing, cpi_months_used
from cloud.leases.terms import CpiLinked
from cloud.staff.accounts import FINANCE_ROLES, Principal
from cloud.staff.audit import record_change

#: Who keeps the CPI series.
CPI_ROLES = FINANCE_ROLES
#: The longest correction note [characters].
MAX_NOTE = 500
NEW, UNCHANGED, CORRECTED = "new", "unchanged", "corrected"


@dataclass(frozen=True)
class CpiRow:
    """A stored month: its figure on its basis."""

    month: date
    basis: str
    value: Decimal

    def as_dict(self) -> dict[str, Any]:
        return {"month": f"{self.month:%Y-%m}", "basis": self.basis, "value": str(self.value)}


@dataclass(frozen=True)
class CpiWait:
    """A CPI-linked lease whose rent is unknown from ``since`` until the CPI of ``months``
    (first days) is published; display names of its tenant and unit."""

    lease_id: str
    tenant_id: str
    tenant_name: str
    unit_id: str
    unit_name: str
    since: date
    months: tuple[date, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "lease_id": self.lease_id,
            "tenant_id": self.tenant_id,
            "tenant_name": self.tenant_name,
            "unit_id": self.unit_id,
            "unit_name": self.unit_name,
            "since": self.since.isoformat(),
            "months": [f"{m:%Y-%m}" for m in self.months],
        }


@dataclass(frozen=True)
class CpiOutcome:
    """What a figure did: ``new``, ``unchanged`` or ``corrected`` (``before``: the old one)."""

    entry: CpiEntry
    status: str
    before: CpiRow | None = None

    def as_dict(self) -> dict[str, Any]:
        out = CpiRow(self.entry.month, self.entry.basis, self.entry.value).as_dict()
        out["row"], out["status"] = self.entry.row, self.status
        out["before"] = self.before.as_dict() if self.before else None
        return out


@dataclass(frozen=True)
class CpiReport:
    """A set or an import (or its dry run): each figure's outcome; ``replanned``: the CPI
    leases whose plan was compiled again."""

    dry_run: bool
    outcomes: tuple[CpiOutcome, ...]
    replanned: int = 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            **{s: self.count(s) for s in (NEW, UNCHANGED, CORRECTED)},
            "replanned": self.replanned,
            "months": [o.as_dict() for o in self.outcomes],
        }


def _may_keep(who: Principal) -> None:
    if who.role not in CPI_ROLES:
        raise NotPermitted(f"the {who.role.value} role does not keep the CPI series")


def _cpi_leases(session: Session, *conditions: Any) -> list[Lease]:
    """The CPI-linked leases with a stored plan (handed over), of ``conditions``."""
    leases = session.scalars(
        select(Lease)
        .join(Unit, Unit.id == Lease.unit_id)
        .where(Lease.id.in_(select(RentStepRow.lease_id)), *conditions)
        .order_by(Lease.id)
    )
    return [lease for lease in leases if lease.schedule["rent"].get("kind") == "cpi"]


def _used_by_invoices(
    session: Session, leases: list[Lease], series: CpiSeries, months: set[date]
) -> list[str]:
    """For each month of ``months`` an issued rent used: who used it (lease and invoice)."""
    found: list[str] = []
    for lease in leases:
        rent, _free = schedule_of(lease)
        assert isinstance(rent, CpiLinked)
        for on, used in cpi_months_used(rent, lease.start_on, lease.end_on, series):
            hit = sorted(months.intersection(used))
            if not hit:
                continue
            invoice = session.scalar(
                select(InvoiceLine.invoice_id)
                .where(
                    InvoiceLine.lease_id == lease.id,
                    InvoiceLine.kind == RENT,
                    InvoiceLine.covers_to > on,
                )
                .order_by(InvoiceLine.covers_from)
                .limit(1)
            )
            if invoice is not None:
                found.extend(
                    f"{m:%Y-%m}: lease {lease.id}'s rent from {on} on used it, on issued "
                    f"invoice {invoice}"
                    for m in hit
                )
                break
    return found


class CpiDesk(LeaseDesk):
    """Keeps the CPI series for one staff member at a time."""

    def series(self, who: Principal) -> list[CpiRow]:
        """The stored months, newest first."""
        _may_keep(who)
        with self.sessions() as session:
            rows = session.scalars(select(CpiIndex).order_by(CpiIndex.month.desc()))
            return [CpiRow(r.month, r.basis, Decimal(r.level)) for r in rows]

    def waiting(self, who: Principal) -> list[CpiWait]:
        """The caller's running CPI-linked leases whose rent stops at an adjustment the
        series does not answer yet, by the day their rent is unknown from."""
        _may_keep(who)
        scope = scope_condition(who)
        with self.sessions() as session:
            series = cpi_series(session)
            out = []
            for lease in _cpi_leases(
                session, *(() if scope is None else (scope,)), Lease.rent_from.is_not(None)
            ):
                since = plan_for(lease, series).known_until
                if since is None or (lease.ended_on is not None and lease.ended_on <= since):
                    continue
                rent, _free = schedule_of(lease)
                assert isinstance(rent, CpiLinked)
                tenant, unit = (
                    session.get(Tenant, lease.tenant_id),
                    session.get(Unit, lease.unit_id),
                )
                out.append(
                    CpiWait(
                        lease.id,
                        lease.tenant_id,
                        tenant.name if tenant else lease.tenant_id,
                        lease.unit_id,
                        (unit.name if unit else "") or lease.unit_id,
                        since,
                        cpi_months_missing(series, since, rent.lag_months),
                    )
                )
            return sorted(out, key=lambda w: (w.since, w.lease_id))

    def set_month(
        self,
        who: Principal,
        month: str,
        basis: str,
        value: str,
        *,
        correct: bool = False,
        note: str = "",
    ) -> CpiReport:
        """Store one month's figure (typed: ``YYYY-MM``, ``yoy``/``level``, a decimal)."""
        _may_keep(who)
        entry = parse_entry(month, basis, value, self.today())
        return self._apply(who, [entry], correct=correct, note=note, dry_run=False)

    def import_csv(
        self, who: Principal, raw: bytes, *, dry_run: bool, correct: bool = False, note: str = ""
    ) -> CpiReport:
        """Store the figures of a CPI CSV (:mod:`cloud.leases.cpi_file`) all or none."""
        _may_keep(who)
        entries = read_cpi_csv(raw, self.today())
        return self._apply(who, entries, correct=correct, note=note, dry_run=dry_run)

    def _apply(
        self,
        who: Principal,
        entries: list[CpiEntry],
        *,
        correct: bool,
        note: str,
        dry_run: bool,
    ) -> CpiReport:
        note = note.strip()
        if len(note) > MAX_NOTE:
            raise CpiError(f"note: {len(note)} characters, expected at most {MAX_NOTE}")
        at = self.clock()
        with self.sessions() as session:
            stored = {r.month: r for r in session.scalars(select(CpiIndex))}
            outcomes: list[CpiOutcome] = []
            problems: list[str] = []
            for e in entries:
                old = stored.get(e.month)
                if old is None:
                    outcomes.append(CpiOutcome(e, NEW))
                    continue
                before = CpiRow(old.month, old.basis, Decimal(old.level))
                if (before.basis, before.value) == (e.basis, e.value):
                    outcomes.append(CpiOutcome(e, UNCHANGED))
                    continue
                where = f"row {e.row}, " if e.row else ""
                if not correct or not note:
                    problems.append(
                        f"{where}month {e.month:%Y-%m} is stored as {before.basis} "
                        f"{before.value}: changing it is a correction (--correct and a note)"
                    )
                    continue
                outcomes.append(CpiOutcome(e, CORRECTED, before))
            corrected = {o.entry.month for o in outcomes if o.status == CORRECTED}
            if corrected:
                series = cpi_series(session)
                problems.extend(
                    f"{used}; an issued invoice's rent is not changed by a correction"
                    for used in _used_by_invoices(session, _cpi_leases(session), series, corrected)
                )
            if problems:
                raise CpiError(f"{len(problems)} months refused, nothing stored", problems)
            changes = [o for o in outcomes if o.status != UNCHANGED]
            replanned = 0
            for o in changes:
                row = stored.get(o.entry.month) or CpiIndex(month=o.entry.month)
                row.level, row.basis = o.entry.value, o.entry.basis
                session.add(row)
                record_change(
                    session,
                    at=at,
                    actor=who.username,
                    origin=who.origin,
                    action="cpi_correct" if o.status == CORRECTED else "cpi_publish",
                    subject=f"cpi:{o.entry.month:%Y-%m}",
                    before=o.before.as_dict() if o.before else None,
                    after=CpiRow(o.entry.month, o.entry.basis, o.entry.value).as_dict(),
                    note=note,
                )
            if changes:
                session.flush()
                series = cpi_series(session)
                for lease in _cpi_leases(session):
                    store_plan(session, lease, series)
                    replanned += 1
            if dry_run:
                session.rollback()
            else:
                session.commit()
            return CpiReport(dry_run, tuple(outcomes), replanned)
