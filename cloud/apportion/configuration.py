"""A site's apportionment configuration in the registry: write a case's, read one back.

:func:`save_configuration` stores what a case says about the site — units, the meter tree,
meter installations and their multipliers, occupancy, allocation rules, tariff versions —
and its source bill. :func:`load_configuration` reads them back as a :class:`Case` for one
period, with the period's readings, history and drivers handed in (they live in the series
store and the weather feed, not in the registry). Registers are the bill's, in name order.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.apportion.case.document import Case
from cloud.apportion.case.loading import case_from_data
from cloud.apportion.models import (
    AllocationRule,
    MeterInstallation,
    MultiplierStepRow,
    OccupancySegment,
    SourceBill,
    SourceBillAmount,
    TariffVersionRow,
    TreeNode,
    Unit,
)
from cloud.apportion.money import DEMAND, to_cents
from cloud.registry.models import Meter, Site
from cloud.registry.service import ensure_site

#: The date a multiplier given without dates is stored from.
ALWAYS = date(1970, 1, 1)


def save_configuration(session: Session, case: Case) -> None:
    """Write ``case``'s units, tree, installations, occupancy, rules, tariffs and bill.

    Meters the registry does not know yet are registered without protocol or address.
    """
    ensure_site(session, case.site, timezone=case.timezone)
    session.flush()
    for meter in case.meters:
        if session.get(Meter, meter.id) is None:
            session.add(Meter(id=meter.id, site_id=case.site, protocol="", address=""))
    for unit in case.units:
        session.add(
            Unit(
                id=unit.id,
                site_id=case.site,
                area_m2=unit.area,
                building=unit.building,
                floor=unit.floor,
            )
        )
    session.flush()
    for node in _parents_first(case):
        session.add(
            TreeNode(
                id=node.id,
                site_id=case.site,
                kind=node.kind,
                parent_id=node.parent,
                unit_id=(node.unit or node.id) if node.kind == "unit" else None,
                landlord_area_m2=node.area,
            )
        )
        session.flush()
    meters = case.meter_index()
    for node in case.tree:
        if node.meter is None:
            continue
        chain = case.chain(node.meter, meters)
        for installation in reversed(chain):  # the replacement first: it is referred to
            session.add(
                MeterInstallation(
                    id=installation.id,
                    meter_id=installation.id,
                    node_id=node.id,
                    installed_on=installation.installed,
                    removed_on=installation.removed,
                    capacity=installation.capacity,
                    bidirectional=installation.bidirectional,
                    replaced_by_id=installation.replaced_by,
                )
            )
            session.flush()
            steps = installation.multiplier if isinstance(installation.multiplier, list) else None
            for step_from, value in (
                [(s.from_, s.value) for s in steps]
                if steps
                else [(ALWAYS, installation.multiplier)]
            ):
                session.add(
                    MultiplierStepRow(
                        installation_id=installation.id, effective_from=step_from, multiplier=value
                    )
                )
    for unit_node, stays in case.occupancy.items():
        for stay in stays:
            session.add(
                OccupancySegment(
                    node_id=unit_node, tenant=stay.tenant, from_=stay.from_, to=stay.to
                )
            )
    for node in case.tree:
        if node.rule is None:
            continue
        r = node.rule
        session.add(
            AllocationRule(
                node_id=node.id,
                basis=r.basis.value,
                blend_p=r.p,
                coefficients={k: str(v) for k, v in r.coefficients.items()},
                formula_driver=r.formula.driver if r.formula else None,
                formula_base=r.formula.base if r.formula else None,
                formula_span=r.formula.span if r.formula else None,
                loss_cap=r.loss_cap,
                vacant=r.vacant.value,
                estimate_limit=r.estimate_limit,
                on_estimate_excess=r.on_estimate_excess,
                common_type=r.common_type.value if r.common_type else None,
                exclusive_to=r.exclusive_to,
                shared_by=list(r.shared_by),
            )
        )
    for t in case.tariffs:
        session.add(
            TariffVersionRow(
                id=t.id,
                site_id=case.site,
                kind=t.kind.value,
                effective_from=t.from_,
                effective_to=t.to,
                prices={k: str(v) for k, v in t.prices.items()}
                if t.prices
                else ({"*": str(t.price)} if t.price is not None else {}),
                tiers=[
                    {"upto": None if x.upto is None else str(x.upto), "price": str(x.price)}
                    for x in t.tiers
                ],
                demand_price=t.demand_price,
                markup=t.markup,
            )
        )
    bill = SourceBill(
        site_id=case.site,
        invoice=case.bill.invoice,
        period_start=case.period.start,
        period_end=case.period.end,
        demand_kw=case.bill.demand_kw,
    )
    session.add(bill)
    session.flush()
    for register, amount in case.bill.amounts.items():
        session.add(SourceBillAmount(bill_id=bill.id, register=register, cents=to_cents(amount)))
    if case.bill.demand is not None:
        session.add(
            SourceBillAmount(bill_id=bill.id, register=DEMAND, cents=to_cents(case.bill.demand))
        )
    session.flush()


def _parents_first(case: Case) -> list[Any]:
    nodes = {n.id: n for n in case.tree}
    ordered: list[Any] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        parent = nodes[node_id].parent
        if parent is not None:
            visit(parent)
        seen.add(node_id)
        ordered.append(nodes[node_id])

    for node_id in sorted(nodes):
        visit(node_id)
    return ordered


def _number(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def load_configuration(
    session: Session,
    site_id: str,
    invoice: str,
    *,
    readings: Mapping[str, Any],
    history: Mapping[str, Any] | None = None,
    drivers: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
) -> Case:
    """The case of ``site_id``'s bill ``invoice``: configuration from the registry, the
    period's ``readings`` (meter → {date: values}), ``history`` and ``drivers`` as given.

    Raises CaseError (from validation) when the stored configuration is incomplete for the
    period, e.g. a tariff version is missing.
    """
    bill = session.scalars(
        select(SourceBill).where(SourceBill.site_id == site_id, SourceBill.invoice == invoice)
    ).one()
    amounts = {
        a.register: a.cents
        for a in session.scalars(
            select(SourceBillAmount).where(SourceBillAmount.bill_id == bill.id)
        )
    }
    registers = sorted(r for r in amounts if r != DEMAND)
    site = session.get(Site, site_id)
    nodes = session.scalars(select(TreeNode).where(TreeNode.site_id == site_id)).all()
    node_ids = [n.id for n in nodes]
    installations = session.scalars(
        select(MeterInstallation).where(MeterInstallation.node_id.in_(node_ids))
    ).all()
    replaced = {i.replaced_by_id for i in installations if i.replaced_by_id}
    first = {i.node_id: i.id for i in installations if i.id not in replaced}
    rules = {
        r.node_id: r
        for r in session.scalars(select(AllocationRule).where(AllocationRule.node_id.in_(node_ids)))
    }
    tree = []
    for n in nodes:
        node: dict[str, Any] = {
            "id": n.id,
            "kind": n.kind,
            "parent": n.parent_id,
            "meter": first.get(n.id),
        }
        if n.kind == "unit" and n.unit_id != n.id:
            node["unit"] = n.unit_id
        if n.landlord_area_m2 is not None:
            node["area"] = _number(n.landlord_area_m2)
        if n.id in rules:
            r = rules[n.id]
            node["rule"] = {
                "basis": r.basis,
                "p": _number(r.blend_p),
                "coefficients": r.coefficients,
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
        tree.append(node)
    meters = []
    for i in installations:
        steps = session.scalars(
            select(MultiplierStepRow)
            .where(MultiplierStepRow.installation_id == i.id)
            .order_by(MultiplierStepRow.effective_from)
        ).all()
        multiplier: Any = (
            _number(steps[0].multiplier)
            if len(steps) == 1 and steps[0].effective_from == ALWAYS
            else [{"from": s.effective_from, "value": _number(s.multiplier)} for s in steps]
        )
        meters.append(
            {
                "id": i.id,
                "multiplier": multiplier,
                "capacity": _number(i.capacity),
                "bidirectional": i.bidirectional,
                "installed": i.installed_on,
                "removed": i.removed_on,
                "replaced_by": i.replaced_by_id,
            }
        )
    units = [
        {"id": u.id, "area": _number(u.area_m2), "building": u.building, "floor": u.floor}
        for u in session.scalars(select(Unit).where(Unit.site_id == site_id))
    ]
    occupancy: dict[str, list[dict[str, Any]]] = {}
    for o in session.scalars(
        select(OccupancySegment).where(OccupancySegment.node_id.in_(node_ids))
    ):
        occupancy.setdefault(o.node_id, []).append(
            {"tenant": o.tenant, "from": o.from_, "to": o.to}
        )
    tariffs = []
    for t in session.scalars(select(TariffVersionRow).where(TariffVersionRow.site_id == site_id)):
        if t.effective_from >= bill.period_end or (
            t.effective_to is not None and t.effective_to <= bill.period_start
        ):
            continue
        tariff: dict[str, Any] = {
            "id": t.id,
            "kind": t.kind,
            "from": t.effective_from,
            "to": t.effective_to,
            "markup": _number(t.markup),
            "demand_price": _number(t.demand_price),
        }
        if "*" in t.prices:
            tariff["price"] = t.prices["*"]
        else:
            tariff["prices"] = t.prices
        tariff["tiers"] = t.tiers
        tariffs.append(tariff)
    data: dict[str, Any] = {
        "site": site_id,
        "timezone": site.timezone if site else "Asia/Shanghai",
        "period": {"start": bill.period_start, "end": bill.period_end},
        "registers": registers,
        "units": units,
        "meters": meters,
        "tree": tree,
        "occupancy": occupancy,
        "readings": dict(readings),
        "history": dict(history or {}),
        "drivers": dict(drivers or {}),
        "tariffs": tariffs,
        "bill": {
            "invoice": bill.invoice,
            "amounts": {r: str(Decimal(amounts[r]) / 100) for r in registers},
            "demand": str(Decimal(amounts[DEMAND]) / 100) if DEMAND in amounts else None,
            "demand_kw": _number(bill.demand_kw),
        },
        "policy": dict(policy or {}),
    }
    return case_from_data(data, f"site {site_id} bill {invoice}")
