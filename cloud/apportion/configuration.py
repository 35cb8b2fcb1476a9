"""A site's apportionment set-up in the registry: import a site file, export it back.

:func:`import_site` stores what a site file says — units, meters and their installations
and multiplier steps, the tree and its rules, occupancy, tariff versions, registers and
policy — item by item: an item the registry lacks is created, one that differs is updated,
one that is equal is left alone, so importing the same file twice changes nothing. Nothing
is deleted: a meter leaves the tree with a ``removed`` date, a tenant with an occupancy
``to`` date, a tariff with its ``to`` date (the dates are what makes the set-up effective-
dated; posted runs keep the snapshot they were computed from). Items stored but missing from
the file are reported. Any error refuses the whole file and names every item at fault.

:mod:`cloud.apportion.site_export` reads a site back in the site file's form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.case.canonical import canonical_json, plain
from cloud.apportion.models import (
    AllocationRule,
    MeterInstallation,
    MultiplierStepRow,
    OccupancySegment,
    SiteSettings,
    TariffVersionRow,
    TreeNode,
    Unit,
)
from cloud.apportion.site import SiteFile, SiteFileError
from cloud.registry.models import Meter, Site
from cloud.staff.audit import record
from edge.wire import Clock, utc_now

#: The date a multiplier given without dates is stored from.
ALWAYS = date(1970, 1, 1)


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do), per kind of item."""

    site: str
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    not_in_file: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = False

    def count(self, kind: str, outcome: str) -> None:
        table = {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}
        table[outcome][kind] = table[outcome].get(kind, 0) + 1

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)

    def as_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "not_in_file": self.not_in_file,
        }


def _put(
    session: Session, report: ImportReport, kind: str, row: Any | None, new: Any, values: dict
) -> Any:
    """Create ``new`` (a row with ``values``) when ``row`` is None, else update ``row`` where
    a value differs; count the outcome."""
    if row is None:
        for name, value in values.items():
            setattr(new, name, value)
        session.add(new)
        report.count(kind, "created")
        return new
    differs = {n: v for n, v in values.items() if _norm(getattr(row, n)) != _norm(v)}
    for name, value in differs.items():
        setattr(row, name, value)
    report.count(kind, "updated" if differs else "unchanged")
    return row


def _norm(value: Any) -> Any:
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, dict | list):
        return canonical_json(value)
    return value


_CHUNK = 500  # ids per IN (...) list


def _existing(session: Session, column: Any, ids: Iterable[str]) -> dict[Any, Any]:
    """Rows whose ``column`` is one of ``ids``, by that column's value (one query per
    :data:`_CHUNK` ids): the import looks items up in memory, not one query each."""
    wanted = sorted(set(ids))
    entity = column.class_
    out: dict[Any, Any] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for row in session.scalars(select(entity).where(column.in_(chunk))):
            out[getattr(row, column.key)] = row
    return out


def import_site(
    session: Session, site: SiteFile, *, by: str, clock: Clock = utc_now
) -> ImportReport:
    """Store ``site`` (see the module docstring); SiteFileError refuses it whole.

    The caller owns the transaction: a dry run rolls it back after reading the report.
    """
    s = site.schema
    report = ImportReport(s.site)
    _refuse_foreign_items(session, site)
    site_row = session.get(Site, s.site)
    _put(
        session,
        report,
        "site",
        site_row,
        Site(id=s.site),
        {"name": s.name or (site_row.name if site_row else s.site), "timezone": s.timezone},
    )
    session.flush()
    sha = hashlib.sha256(canonical_json(site.sections)).hexdigest()
    settings = session.get(SiteSettings, s.site)
    policy = plain(s.policy.model_dump(mode="python"))
    quantities = {r: s.quantity(r) for r in s.registers}
    landlord = s.property.model_dump(mode="json") if s.property is not None else None
    if settings is None or (
        settings.registers,
        settings.quantities,
        settings.policy,
        settings.property,
    ) != (s.registers, quantities, policy, landlord):
        _put(
            session,
            report,
            "settings",
            settings,
            SiteSettings(site_id=s.site),
            {
                "registers": list(s.registers),
                "quantities": quantities,
                "policy": policy,
                "property": landlord,
                "file_sha256": sha,
                "imported_by": by,
                "imported_at": clock(),
            },
        )
    else:
        report.count("settings", "unchanged")
    known_meters = set(session.scalars(select(Meter.id).where(Meter.site_id == s.site)))
    for meter in s.meters:
        if meter.id not in known_meters:
            session.add(Meter(id=meter.id, site_id=s.site, protocol="", address=""))
            report.count("meter", "created")
    units = _existing(session, Unit.id, (u.id for u in s.units))
    for unit in s.units:
        _put(
            session,
            report,
            "unit",
            units.get(unit.id),
            Unit(id=unit.id, site_id=s.site),
            {
                "area_m2": unit.area,
                "building": unit.building,
                "floor": unit.floor,
                "name": unit.name,
            },
        )
    session.flush()
    _import_tree(session, site, report)
    _import_occupancy(session, site, report)
    tariffs = _existing(session, TariffVersionRow.id, (t.id for t in s.tariffs))
    for t in s.tariffs:
        _put(
            session,
            report,
            "tariff",
            tariffs.get(t.id),
            TariffVersionRow(id=t.id, site_id=s.site),
            {
                "kind": t.kind.value,
                "effective_from": t.from_,
                "effective_to": t.to,
                "prices": {k: str(v) for k, v in t.prices.items()}
                if t.prices
                else ({"*": str(t.price)} if t.price is not None else {}),
                "tiers": [
                    {"upto": None if x.upto is None else str(x.upto), "price": str(x.price)}
                    for x in t.tiers
                ],
                "demand_price": t.demand_price,
                "markup": t.markup,
            },
        )
    session.flush()
    _report_missing(session, site, report)
    if report.changed:
        record(
            session,
            at=clock(),
            actor=by,
            action="site.import",
            subject=f"site:{s.site}",
            detail=f"sha256 {sha}; created {report.created}; updated {report.updated}",
        )
        session.flush()
    return report


def _refuse_foreign_items(session: Session, site: SiteFile) -> None:
    """Ids are global: a unit, node, meter or tariff of another site is refused by name."""
    s = site.schema
    errors: list[str] = []
    checks: Iterable[tuple[str, type, list[str]]] = (
        ("units", Unit, [u.id for u in s.units]),
        ("tree", TreeNode, [n.id for n in s.tree]),
        ("meters", Meter, [m.id for m in s.meters]),
        ("tariffs", TariffVersionRow, [t.id for t in s.tariffs]),
    )
    for section, model, ids in checks:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for row_id, owner in session.execute(
                select(model.id, model.site_id).where(model.id.in_(chunk))
            ):
                if owner != s.site:
                    errors.append(f"{section}: {row_id!r} belongs to site {owner!r}")
    if errors:
        raise SiteFileError(f"site {s.site}", sorted(errors))


def _parents_first(site: SiteFile) -> list[Any]:
    nodes = {n.id: n for n in site.schema.tree}
    ordered: list[Any] = []
    seen: set[str] = set()
    for node_id in sorted(nodes):
        path = []
        cursor: str | None = node_id
        while cursor is not None and cursor not in seen:
            path.append(cursor)
            seen.add(cursor)
            cursor = nodes[cursor].parent
        ordered.extend(nodes[n] for n in reversed(path))
    return ordered


def _import_tree(session: Session, site: SiteFile, report: ImportReport) -> None:
    s = site.schema
    nodes = _existing(session, TreeNode.id, (n.id for n in s.tree))
    for node in _parents_first(site):  # one flush inserts them in this order
        _put(
            session,
            report,
            "node",
            nodes.get(node.id),
            TreeNode(id=node.id, site_id=s.site),
            {
                "kind": node.kind,
                "parent_id": node.parent,
                "unit_id": (node.unit or node.id) if node.kind == "unit" else None,
                "landlord_area_m2": node.area,
                "name": node.name,
            },
        )
    session.flush()
    meters = {m.id: m for m in s.meters}
    installations: list[tuple[str, Any]] = []
    for node in s.tree:
        cursor = node.meter
        chain = []
        while cursor is not None:
            chain.append(meters[cursor])
            cursor = meters[cursor].replaced_by
        installations += [(node.id, m) for m in reversed(chain)]  # replacements first
    known = _existing(session, MeterInstallation.id, (m.id for _, m in installations))
    steps_of: dict[str, dict[date, MultiplierStepRow]] = {}
    for ids in [
        [m.id for _, m in installations][i : i + _CHUNK]
        for i in range(0, len(installations), _CHUNK)
    ]:
        for row in session.scalars(
            select(MultiplierStepRow).where(MultiplierStepRow.installation_id.in_(ids))
        ):
            steps_of.setdefault(row.installation_id, {})[row.effective_from] = row
    for node_id, m in installations:
        _put(
            session,
            report,
            "installation",
            known.get(m.id),
            MeterInstallation(id=m.id, meter_id=m.id),
            {
                "node_id": node_id,
                "installed_on": m.installed,
                "removed_on": m.removed,
                "capacity": m.capacity,
                "bidirectional": m.bidirectional,
                "replaced_by_id": m.replaced_by,
                "name": m.name,
            },
        )
    session.flush()  # replacements were added first: they are referred to
    for _node_id, m in installations:
        steps = (
            {x.from_: x.value for x in m.multiplier}
            if isinstance(m.multiplier, list)
            else {ALWAYS: m.multiplier}
        )
        stored = steps_of.get(m.id, {})
        for gone in stored.keys() - steps.keys():
            session.delete(stored[gone])
        for day, value in steps.items():
            _put(
                session,
                report,
                "multiplier",
                stored.get(day),
                MultiplierStepRow(installation_id=m.id, effective_from=day),
                {"multiplier": value},
            )
    rules = _existing(session, AllocationRule.node_id, (n.id for n in s.tree))
    for node in s.tree:
        rule = rules.get(node.id)
        if node.rule is None:
            if rule is not None:
                session.delete(rule)
                report.count("rule", "updated")
            continue
        r = node.rule
        _put(
            session,
            report,
            "rule",
            rule,
            AllocationRule(node_id=node.id),
            {
                "basis": r.basis.value,
                "blend_p": r.p,
                "coefficients": {k: str(v) for k, v in r.coefficients.items()},
                "formula_driver": r.formula.driver if r.formula else None,
                "formula_base": r.formula.base if r.formula else None,
                "formula_span": r.formula.span if r.formula else None,
                "loss_cap": r.loss_cap,
                "vacant": r.vacant.value,
                "estimate_limit": r.estimate_limit,
                "on_estimate_excess": r.on_estimate_excess,
                "common_type": r.common_type.value if r.common_type else None,
                "exclusive_to": r.exclusive_to,
                "shared_by": list(r.shared_by),
            },
        )
    session.flush()


def _import_occupancy(session: Session, site: SiteFile, report: ImportReport) -> None:
    """Stays keyed by (unit node, tenant, from); a stay overlapping one stored for the same
    unit (e.g. from the lease ledger) is refused by name."""
    errors = []
    segments: dict[str, list[OccupancySegment]] = {}
    units = sorted(site.schema.occupancy)
    for start in range(0, len(units), _CHUNK):
        chunk = units[start : start + _CHUNK]
        for row in session.scalars(
            select(OccupancySegment).where(OccupancySegment.node_id.in_(chunk))
        ):
            segments.setdefault(row.node_id, []).append(row)
    for node_id, stays in site.schema.occupancy.items():
        stored = segments.get(node_id, [])
        by_key = {(o.tenant, o.from_): o for o in stored}
        for stay in stays:
            row = by_key.get((stay.tenant, stay.from_))
            for other in stored:
                if other is row:
                    continue
                if stay.from_ < (other.to or date.max) and other.from_ < (stay.to or date.max):
                    errors.append(
                        f"occupancy: {node_id} {stay.tenant} from {stay.from_} overlaps the "
                        f"stored stay of {other.tenant} {other.from_} … {other.to or 'open'}"
                    )
            _put(
                session,
                report,
                "occupancy",
                row,
                OccupancySegment(node_id=node_id, tenant=stay.tenant, from_=stay.from_),
                {"to": stay.to, "tenant_name": stay.name},
            )
    if errors:
        raise SiteFileError(f"site {site.schema.site}", errors)
    session.flush()


def _report_missing(session: Session, site: SiteFile, report: ImportReport) -> None:
    s = site.schema
    in_file = {
        "units": {u.id for u in s.units},
        "tree": {n.id for n in s.tree},
        "tariffs": {t.id for t in s.tariffs},
    }
    stored = {
        "units": set(session.scalars(select(Unit.id).where(Unit.site_id == s.site))),
        "tree": set(session.scalars(select(TreeNode.id).where(TreeNode.site_id == s.site))),
        "tariffs": set(
            session.scalars(select(TariffVersionRow.id).where(TariffVersionRow.site_id == s.site))
        ),
    }
    for section, ids in stored.items():
        missing = sorted(ids - in_file[section])
        if missing:
            report.not_in_file[section] = missing
