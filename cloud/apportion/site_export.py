"""A site's stored set-up read back in the site file's form: the export, and the site half
of every close (:func:`cloud.apportion.site.case_data` adds the period's half).

The counterpart of :mod:`cloud.apportion.configuration` (the import): what one writes, the
other reads, so that exporting a site and importing the file again changes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from cloud.apportion.configuration import ALWAYS
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
from cloud.apportion.site import DEFAULT_QUANTITIES, SiteFile, site_from_data
from cloud.registry.models import Site


def _number(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).normalize()


def site_sections(session: Session, site_id: str) -> dict[str, Any]:
    """The site's stored set-up in the site file's form (plain values: Decimals, dates).

    Raises LookupError when the site has no imported set-up.
    """
    site = session.get(Site, site_id)
    settings = session.get(SiteSettings, site_id)
    if site is None or settings is None:
        raise LookupError(f"site {site_id!r} has no site file imported")
    # Core selects: plain rows (attributes named as the columns), no ORM object per row
    nodes = _rows(
        session,
        select(TreeNode.__table__).where(TreeNode.site_id == site_id).order_by(TreeNode.id),
    )
    installations = _rows(
        session,
        select(MeterInstallation.__table__)
        .join(TreeNode, MeterInstallation.node_id == TreeNode.id)
        .where(TreeNode.site_id == site_id)
        .order_by(MeterInstallation.id),
    )
    steps: dict[str, list[Row]] = {}
    for row in _rows(
        session,
        select(MultiplierStepRow.__table__)
        .join(MeterInstallation, MultiplierStepRow.installation_id == MeterInstallation.id)
        .join(TreeNode, MeterInstallation.node_id == TreeNode.id)
        .where(TreeNode.site_id == site_id)
        .order_by(MultiplierStepRow.installation_id, MultiplierStepRow.effective_from),
    ):
        steps.setdefault(row.installation_id, []).append(row)
    rules = {
        r.node_id: r
        for r in _rows(
            session,
            select(AllocationRule.__table__)
            .join(TreeNode, AllocationRule.node_id == TreeNode.id)
            .where(TreeNode.site_id == site_id),
        )
    }
    replaced = {i.replaced_by_id for i in installations if i.replaced_by_id}
    first = {i.node_id: i.id for i in installations if i.id not in replaced}
    tree = [_node(n, first.get(n.id), rules.get(n.id)) for n in nodes]
    meters = [_meter(i, steps.get(i.id, [])) for i in installations]
    units = [
        _drop_empty(
            {
                "id": u.id,
                "area": _number(u.area_m2),
                "building": u.building,
                "floor": u.floor,
                "name": u.name,
            }
        )
        for u in _rows(
            session, select(Unit.__table__).where(Unit.site_id == site_id).order_by(Unit.id)
        )
    ]
    occupancy: dict[str, list[dict[str, Any]]] = {}
    for o in _rows(
        session,
        select(OccupancySegment.__table__)
        .join(TreeNode, OccupancySegment.node_id == TreeNode.id)
        .where(TreeNode.site_id == site_id)
        .order_by(OccupancySegment.node_id, OccupancySegment.from_),
    ):
        occupancy.setdefault(o.node_id, []).append(
            _drop_empty(
                {"tenant": o.tenant, "from": o.from_date, "to": o.to_date, "name": o.tenant_name}
            )
        )
    tariffs = [
        _tariff(t)
        for t in _rows(
            session,
            select(TariffVersionRow.__table__)
            .where(TariffVersionRow.site_id == site_id)
            .order_by(TariffVersionRow.effective_from, TariffVersionRow.id),
        )
    ]
    quantities = {r: q for r, q in settings.quantities.items() if DEFAULT_QUANTITIES.get(r) != q}
    out: dict[str, Any] = {"site": site_id}
    if site.name and site.name != site_id:  # a site without a display name shows its id
        out["name"] = site.name
    out["timezone"] = site.timezone
    out["registers"] = list(settings.registers)
    if quantities:
        out["quantities"] = quantities
    out.update(units=units, meters=meters, tree=tree, occupancy=occupancy, tariffs=tariffs)
    out["policy"] = {k: _maybe_number(v) for k, v in settings.policy.items()}
    if settings.property is not None:
        out["property"] = dict(settings.property)
    return out


def _rows(session: Session, statement: Select[Any]) -> list[Row]:
    return list(session.execute(statement).all())


def _maybe_number(value: Any) -> Any:
    try:
        return Decimal(value) if isinstance(value, str) else value
    except ArithmeticError:
        return value


def _drop_empty(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v not in (None, "", [], {})}


def _node(n: Row, meter: str | None, r: Row | None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": n.id, "kind": n.kind, "parent": n.parent_id, "meter": meter}
    if n.kind == "unit" and n.unit_id != n.id:
        node["unit"] = n.unit_id
    node["area"] = _number(n.landlord_area_m2)
    node["name"] = n.name
    if r is not None:
        node["rule"] = _drop_empty(
            {
                "basis": r.basis,
                "p": _number(r.blend_p),
                "coefficients": {k: Decimal(v) for k, v in r.coefficients.items()},
                "formula": None
                if r.formula_driver is None
                else {
                    "driver": r.formula_driver,
                    "base": _number(r.formula_base),
                    "span": _number(r.formula_span),
                },
                "loss_cap": _number(r.loss_cap),
                "vacant": r.vacant,
                "estimate_limit": _number(r.estimate_limit),
                "on_estimate_excess": r.on_estimate_excess,
                "common_type": r.common_type,
                "exclusive_to": r.exclusive_to,
                "shared_by": r.shared_by,
            }
        )
    return _drop_empty(node)


def _meter(i: Row, steps: list[Row]) -> dict[str, Any]:
    multiplier: Any = (
        _number(steps[0].multiplier)
        if len(steps) == 1 and steps[0].effective_from == ALWAYS
        else [{"from": s.effective_from, "value": _number(s.multiplier)} for s in steps]
    )
    return _drop_empty(
        {
            "id": i.id,
            "multiplier": multiplier,
            "capacity": _number(i.capacity),
            "bidirectional": i.bidirectional or None,
            "installed": i.installed_on,
            "removed": i.removed_on,
            "replaced_by": i.replaced_by_id,
            "name": i.name,
        }
    )


def _tariff(t: Row) -> dict[str, Any]:
    tariff: dict[str, Any] = {
        "id": t.id,
        "kind": t.kind,
        "from": t.effective_from,
        "to": t.effective_to,
        "markup": _number(t.markup) or None,
        "demand_price": _number(t.demand_price),
    }
    if "*" in t.prices:
        tariff["price"] = Decimal(t.prices["*"])
    else:
        tariff["prices"] = {k: Decimal(v) for k, v in t.prices.items()}
    tariff["tiers"] = [
        _drop_empty(
            {
                "upto": None if x["upto"] is None else Decimal(x["upto"]),
                "price": Decimal(x["price"]),
            }
        )
        for x in t.tiers
    ]
    return _drop_empty(tariff)


def stored_site(session: Session, site_id: str, *, cross_checks: bool = True) -> SiteFile:
    """The site's stored set-up, checked like a site file (LookupError when none);
    ``cross_checks``: see :func:`cloud.apportion.site.site_from_data`."""
    return site_from_data(
        site_sections(session, site_id), f"site {site_id}", cross_checks=cross_checks
    )
