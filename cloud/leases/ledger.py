"""Importing and exporting the lease ledger (台账): tenants, the units' lease profile and
leases, from and to the file :mod:`cloud.leases.ledger_sheets` reads (decision 0032).

An import is all or nothing: the file is read, every row checked against the registry and
the other rows (unknown unit, tenant, manager or parent; a unit outside the caller's
buildings; duplicate ids; leases of a unit that overlap), then applied in one transaction
with the lease services (:mod:`cloud.leases.lifecycle`: a new lease is created and brought
to ``signed`` or ``active``); any issue, or a dry run, rolls everything back. A row equal to
the stored lease is ``unchanged``; a changed row of a draft updates it; a changed row of a
lease past draft is refused (a signed contract's terms change only by renewal or
termination). Every lease created or changed is in the audit log (``record_change``,
subject ``lease:ID``) in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.models import Unit
from cloud.leases import lifecycle
from cloud.leases.errors import LeaseError, NotPermitted, UnknownRecord
from cloud.leases.ledger_columns import IMPORT_STATUSES, LEASES_SHEET, TENANTS_SHEET, UNITS_SHEET
from cloud.leases.ledger_records import (
    COMPARED,
    FIELD_KEYS,
    as_stored,
    keep_rise,
    record_of,
    terms_of,
)
from cloud.leases.ledger_sheets import (
    Issue,
    LeaseRec,
    Ledger,
    TenantRec,
    UnitRec,
    read_ledger,
)
from cloud.leases.ledger_write import write_ledger_csv, write_ledger_workbook
from cloud.leases.models import Lease, LeaseStatus, Staff, Tenant, UnitProfile
from cloud.leases.reference import add_tenant, set_unit_profile
from cloud.leases.roster import LeaseDesk, scope_condition
from cloud.leases.terms import LeaseTerms
from cloud.staff.accounts import LEDGER_ROLES, Principal
from cloud.staff.audit import record_change
from cloud.staff.visibility import Sensitive, sees
from cloud.wording import DEFAULT_LANGUAGE


@dataclass
class LedgerReport:
    """What an import did (or would do, on a dry run): lease ids created and updated,
    how many rows were unchanged, tenants and unit profiles written; ``issues`` refuse the
    whole file (nothing stored)."""

    dry_run: bool
    issues: list[Issue] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    tenants: int = 0
    units: int = 0
    stored: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "stored": self.stored,
            "ok": not self.issues,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "tenants": self.tenants,
            "units": self.units,
            "issues": [i.as_dict() for i in self.issues],
        }


def _fail(rec: Any, key: str | None, message: str, code: str = "", **params: Any) -> None:
    row = rec.at
    if key is None:
        row.whole(message, code, **params)
    else:
        row.fail(key, message, code, **params)


class LeaseLedger(LeaseDesk):
    """Imports and exports the ledger for a staff member, within their sites and buildings."""

    # ------------------------------------------------------------------------ import

    def import_file(
        self, who: Principal, data: bytes, filename: str, *, dry_run: bool
    ) -> LedgerReport:
        """Check (``dry_run``) or store the ledger file ``data``; nothing is stored when
        any issue is found."""
        if who.role not in LEDGER_ROLES:
            raise NotPermitted(f"the {who.role.value} role may not import leases")
        ledger = read_ledger(data, filename)
        report = LedgerReport(dry_run=dry_run)
        # the rows that were read are checked against the registry and each other even
        # when some cells are bad, so that one pass names every error
        with self.sessions() as session:
            raw: list[Any] = []
            for rec in (*ledger.tenants, *ledger.units, *ledger.leases):
                if rec.at is not None:
                    rec.at.errors = raw
            self._apply(session, who, ledger, report)
            report.issues = ledger.issues + [i for i in raw if isinstance(i, Issue)]
            if report.issues or dry_run:
                session.rollback()
            else:
                session.commit()
                report.stored = True
        report.issues.sort(key=lambda i: (i.sheet, i.row or 0))
        return report

    def _apply(
        self, session: Session, who: Principal, ledger: Ledger, report: LedgerReport
    ) -> None:
        today, now = self.today(), self.clock()
        units = self._units(session, who, ledger)
        _duplicates(ledger.tenants, "id", TENANTS_SHEET)
        _duplicates(ledger.units, "unit", UNITS_SHEET)
        _duplicates(ledger.leases, "id", LEASES_SHEET)
        for tenant in ledger.tenants:
            report.tenants += self._tenant(session, tenant)
        for unit in ledger.units:
            if unit.unit in units:
                report.units += self._unit(session, unit)
        session.flush()
        in_file = {rec.id for rec in ledger.leases}
        staff = set(session.scalars(select(Staff.id)))
        terms: dict[str, LeaseTerms] = {}
        for rec in ledger.leases:
            if rec.manager not in staff:
                _fail(
                    rec,
                    "manager",
                    f"expected a registered staff id, got {rec.manager!r}",
                    "no_staff",
                    value=rec.manager,
                )
            if session.get(Tenant, rec.tenant) is None:
                _fail(
                    rec,
                    "tenant",
                    f"expected a tenant of {TENANTS_SHEET} or registered",
                    "no_tenant",
                    sheet=TENANTS_SHEET,
                    value=rec.tenant,
                )
            if rec.parent and rec.parent not in in_file and session.get(Lease, rec.parent) is None:
                _fail(
                    rec,
                    "parent",
                    f"expected a lease of the file or registered, got {rec.parent!r}",
                    "no_parent",
                    value=rec.parent,
                )
            keep_rise(session, rec)
            try:
                terms[rec.id] = terms_of(rec)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = [str(p) for p in err["loc"]]
                    key = next((FIELD_KEYS[p] for p in reversed(loc) if p in FIELD_KEYS), None)
                    _fail(rec, key, f"{err['msg']}".removeprefix("Value error, "))
        self._overlaps(session, [rec for rec in ledger.leases if rec.unit in units])
        for rec in sorted(ledger.leases, key=lambda r: r.parent is not None):
            if rec.id not in terms or rec.unit not in units or (rec.at and rec.at.failed):
                continue
            try:
                self._lease(session, who, rec, terms[rec.id], report, today, now)
            except LeaseError as exc:
                _fail(rec, None, str(exc))

    def _units(self, session: Session, who: Principal, ledger: Ledger) -> set[str]:
        """The units named in the file that exist and are in ``who``'s scope."""
        named = {u.unit for u in ledger.units} | {x.unit for x in ledger.leases}
        found = {u.id: u for u in session.scalars(select(Unit).where(Unit.id.in_(sorted(named))))}
        ok = set()
        for rec in (*ledger.units, *ledger.leases):
            unit = found.get(rec.unit)
            if unit is None:
                _fail(
                    rec,
                    "unit",
                    f"expected a unit of the site import, got {rec.unit!r}",
                    "no_unit",
                    value=rec.unit,
                )
            elif not who.may_see_unit(unit.site_id, unit.building):
                _fail(
                    rec,
                    "unit",
                    f"unit {rec.unit!r} is in building {unit.site_id}/{unit.building or '—'}, "
                    "outside your buildings",
                    "unit_scope",
                    unit=rec.unit,
                    building=f"{unit.site_id}/{unit.building or '—'}",
                )
            else:
                ok.add(rec.unit)
        return ok

    def _tenant(self, session: Session, rec: TenantRec) -> int:
        stored = session.get(Tenant, rec.id)
        if stored is None:
            add_tenant(
                session,
                rec.id,
                rec.name,
                channel=rec.channel,
                address=rec.address,
                id_number=rec.id_number,
                language=rec.language or DEFAULT_LANGUAGE,
            )
            return 1
        wanted = (
            rec.name,
            rec.channel,
            rec.address,
            rec.id_number or stored.id_number,
            rec.language or stored.language,
        )
        if (
            stored.name,
            stored.channel,
            stored.address,
            stored.id_number,
            stored.language,
        ) == wanted:
            return 0
        stored.name, stored.channel, stored.address, stored.id_number, stored.language = wanted
        return 1

    def _unit(self, session: Session, rec: UnitRec) -> int:
        stored = session.get(UnitProfile, rec.unit)
        wanted = (rec.unit_type, rec.property_type, rec.rentable, rec.asking_cents)
        if (
            stored is not None
            and (
                stored.unit_type,
                stored.property_type,
                stored.rentable,
                stored.asking_cents,
            )
            == wanted
        ):
            return 0
        set_unit_profile(
            session,
            rec.unit,
            rec.unit_type,
            rentable=rec.rentable,
            asking_cents=rec.asking_cents,
            property_type=rec.property_type,
        )
        return 1

    def _overlaps(self, session: Session, leases: list[LeaseRec]) -> None:
        """Leases of one unit whose terms overlap (the file's rows, of units in the caller's
        scope, and stored leases not in the file that still hold the unit); a lease and its
        own parent may share a unit."""
        in_file = {rec.id for rec in leases}
        units = sorted({rec.unit for rec in leases})
        spans: dict[str, list[tuple[date, date, str, str | None, LeaseRec | None]]] = {}
        for rec in leases:
            spans.setdefault(rec.unit, []).append(
                (rec.start_on, rec.end_on, rec.id, rec.parent, rec)
            )
        for lease in session.scalars(select(Lease).where(Lease.unit_id.in_(units))):
            if lease.id in in_file:
                continue
            end = lease.ended_on or (
                date.max if lease.status == LeaseStatus.OPEN_ENDED else lease.end_on
            )
            if lease.status == LeaseStatus.TERMINATED and lease.ended_on is None:
                continue
            spans[lease.unit_id].append((lease.start_on, end, lease.id, lease.parent_id, None))
        for items in spans.values():
            items.sort(key=lambda s: (s[0], s[2]))
            for i, (start, end, lid, parent, rec) in enumerate(items):
                for o_start, o_end, oid, o_parent, o_rec in items[i + 1 :]:
                    if o_start >= end:
                        break
                    if parent == oid or o_parent == lid or start >= o_end:
                        continue
                    for mine, other, (s, e) in (
                        (o_rec, lid, (start, end)),
                        (rec, oid, (o_start, o_end)),
                    ):
                        if mine is not None:
                            until = "open-ended" if e == date.max else f"to {e}"
                            _fail(
                                mine,
                                None,
                                f"lease {mine.id!r} overlaps lease {other!r} of unit "
                                f"{mine.unit!r} (from {s} {until})",
                                "overlap" if e != date.max else "overlap_open",
                                lease=mine.id,
                                other=other,
                                unit=mine.unit,
                                start=s,
                                end=e,
                            )
                            break

    def _lease(
        self,
        session: Session,
        who: Principal,
        rec: LeaseRec,
        terms: LeaseTerms,
        report: LedgerReport,
        today: date,
        now: Any,
    ) -> None:
        stored = session.get(Lease, rec.id)
        if stored is not None:
            unit = session.get(Unit, stored.unit_id)
            if unit is None or not who.may_see_unit(unit.site_id, unit.building):
                _fail(
                    rec,
                    "id",
                    f"expected a new lease id: {rec.id!r} is taken",
                    "taken",
                    value=rec.id,
                )
                return
            current = record_of(stored)
            wanted = as_stored(rec, terms)
            changed = [f for f in COMPARED if getattr(current, f) != getattr(wanted, f)]
            if not changed:
                report.unchanged += 1
                return
            if stored.status != LeaseStatus.DRAFT:
                _fail(
                    rec,
                    None,
                    f"lease {rec.id!r} is {stored.status}; the terms of a signed contract "
                    f"change only by renewal or termination (changed: {', '.join(changed)})",
                    "signed_terms",
                    lease=rec.id,
                    status=str(stored.status),
                    changed=", ".join(changed),
                )
                return
            before = lifecycle.snapshot(stored) | {"schedule": stored.schedule}
            lifecycle.update_draft(session, terms)
            report.updated.append(rec.id)
        else:
            if rec.status not in IMPORT_STATUSES:
                _fail(
                    rec,
                    "status",
                    f"expected {', '.join(IMPORT_STATUSES)} for a new lease",
                    "new_status",
                    choices=" / ".join(IMPORT_STATUSES),
                )
                return
            before = None
            lifecycle.create_lease(session, terms, by=who.username, today=today, clock=self.clock)
            report.created.append(rec.id)
        lease = session.get(Lease, rec.id)
        assert lease is not None
        if rec.status in ("signed", "active") and lease.status == LeaseStatus.DRAFT:
            assert rec.signed_on is not None
            lifecycle.sign(
                session, rec.id, on=rec.signed_on, by=who.username, how="ledger", clock=self.clock
            )
        if rec.status == "active" and lease.status == LeaseStatus.SIGNED:
            lifecycle.hand_over(
                session,
                rec.id,
                on=rec.handover_on or rec.start_on,
                by=who.username,
                clock=self.clock,
            )
        record_change(
            session,
            at=now,
            actor=who.username,
            origin=who.origin,
            action="ledger import",
            subject=f"lease:{rec.id}",
            before=before,
            after=lifecycle.snapshot(lease) | {"schedule": lease.schedule},
            note="created" if before is None else "draft updated",
        )

    # ------------------------------------------------------------------------ export

    def export(self, who: Principal, site: str, fmt: str) -> bytes:
        """The ledger of ``site`` within ``who``'s buildings, as ``xlsx`` or ``csv`` bytes
        (the template's form). Tenants' ID numbers are left blank for a role that does not
        see them in full (a blank ID number is kept as stored on import)."""
        if who.role not in LEDGER_ROLES:
            raise NotPermitted(f"the {who.role.value} role may not export the ledger")
        if not who.may_act_on(site):
            raise UnknownRecord(f"no site {site!r} among your sites")
        with self.sessions() as session:
            query = select(Lease, Unit).join(Unit, Unit.id == Lease.unit_id)
            query = query.where(Unit.site_id == site).order_by(
                Unit.building, Unit.id, Lease.start_on, Lease.id
            )
            unit_query = select(UnitProfile).join(Unit, Unit.id == UnitProfile.unit_id)
            unit_query = unit_query.where(Unit.site_id == site).order_by(Unit.building, Unit.id)
            scope = scope_condition(who)
            if scope is not None:
                query, unit_query = query.where(scope), unit_query.where(scope)
            leases = [record_of(lease) for lease, _unit in session.execute(query)]
            ids = sorted({rec.tenant for rec in leases})
            full = sees(who.role, Sensitive.ID_NUMBER)
            tenants = [
                TenantRec(
                    t.id, t.name, t.channel, t.address, t.id_number if full else None, t.language
                )
                for t in session.scalars(
                    select(Tenant).where(Tenant.id.in_(ids)).order_by(Tenant.id)
                )
            ]
            units = [
                UnitRec(p.unit_id, p.unit_type, p.property_type, p.rentable, p.asking_cents)
                for p in session.scalars(unit_query)
            ]
        # parents before their children, so that the file imports in order
        leases.sort(key=lambda r: r.parent is not None)
        if fmt == "csv":
            return write_ledger_csv(tenants, leases)
        return write_ledger_workbook(tenants, units, leases)


def template() -> bytes:
    """The empty ledger workbook."""
    return write_ledger_workbook([], [], [])


def _duplicates(records: Iterable[Any], key: str, sheet: str) -> None:
    seen: dict[str, int] = {}
    for rec in records:
        value = getattr(rec, key)
        if value in seen:
            _fail(
                rec,
                key,
                f"expected a unique id: {value!r} is on row {seen[value]} too",
                "duplicate",
                value=value,
                row=seen[value],
            )
        else:
            seen[value] = rec.at.line if rec.at is not None else 0
