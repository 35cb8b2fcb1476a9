"""A valid case as engine inputs: arrays in canonical order, cut into slices.

:func:`build_engine_inputs` turns a case into
:class:`~cloud.apportion.engine_inputs.EngineInputs`: everything sorted by id (so the input
order of the file never matters), the period cut at every date where something changes
(tariff version, occupancy, installation, multiplier).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from cloud.apportion.case.readings import ReadingTable
from cloud.apportion.case.schema import CaseSchema, NodeSpec, RuleSpec
from cloud.apportion.engine_inputs import EngineInputs, MeterInputs, Period, Policy, TreeInputs
from cloud.apportion.keys import CommonType, Formula, Rule
from cloud.apportion.lines import LANDLORD, VACANT
from cloud.apportion.money import Bill, TariffVersion, Tier, to_cents
from cloud.apportion.tree import NodeKind

GOOD_QUALITIES = frozenset({"good", "estimated"})


def build_engine_inputs(case: CaseSchema) -> EngineInputs:
    start, days = case.period.start, case.days
    registers = tuple(case.registers)
    nreg = len(registers)

    def clip(day: date | None, default: int) -> int:
        return default if day is None else min(max(case.day_index(day), 0), days)

    nodes = sorted(case.tree, key=lambda n: n.id)
    node_index = {n.id: i for i, n in enumerate(nodes)}
    meter_node: dict[str, int] = {}
    by_id = case.meter_index()
    for n in nodes:
        if n.meter is not None:
            for installation in case.chain(n.meter, by_id):
                meter_node[installation.id] = node_index[n.id]
    meters = sorted(case.meters, key=lambda m: m.id)

    cuts = {0, days}
    for t in case.tariffs:
        cuts |= {clip(t.from_, 0), clip(t.to, days)}
    for stays in case.occupancy.values():
        for s in stays:
            cuts |= {clip(s.from_, 0), clip(s.to, days)}
    for m in meters:
        cuts |= {clip(m.installed, 0), clip(m.removed, days)}
        if isinstance(m.multiplier, list):
            cuts |= {clip(s.from_, 0) for s in m.multiplier}
    breakpoints = np.array(sorted(cuts), dtype=np.int64)
    slice_start = [start + timedelta(days=int(d)) for d in breakpoints[:-1]]

    count = len(meters)
    values = np.full((count, days + 1, nreg), np.nan)
    multiplier = np.ones((count, breakpoints.size - 1))
    history = np.full((count, nreg), np.nan)
    register_index = {name: k for k, name in enumerate(registers)}
    at_meter: list[int] = []  # the readings' (meter, day, values), set in one assignment
    at_day: list[int] = []
    read: list[Decimal] = []  # register by register
    table = case.readings if isinstance(case.readings, ReadingTable) else None
    if table is not None and table.days:  # the arrays as they are (decision 0036)
        position = {m.id: i for i, m in enumerate(meters)}
        counts = np.diff(np.asarray(table.bounds))
        rows = np.repeat(np.array([position[m] for m in table.meters], dtype=np.int64), counts)
        order = [table.registers.index(r) for r in registers]
        values[rows, np.asarray(table.days) - start.toordinal()] = table.values[:, order]
    for i, m in enumerate(meters if table is None else ()):
        for at, reading in case.readings.get(m.id, {}).items():
            if reading.quality not in GOOD_QUALITIES:
                continue
            at_meter.append(i)
            at_day.append(case.day_index(case.reading_day(m.id, at)))
            for r in registers:
                read.append(reading.values[r])
    if read:
        values[at_meter, at_day] = np.array(read, dtype=np.float64).reshape(-1, nreg)
    for i, m in enumerate(meters):
        if isinstance(m.multiplier, list):
            for j, day in enumerate(slice_start):
                steps = [s.value for s in m.multiplier if s.from_ <= day]
                multiplier[i, j] = float(steps[-1] if steps else m.multiplier[0].value)
        else:
            multiplier[i] = float(m.multiplier)
        for name, rate in case.history.get(m.id, {}).items():
            history[i, register_index[name]] = float(rate)

    units = {u.id: u for u in case.units}
    buildings = {b: k for k, b in enumerate(sorted({u.building for u in case.units}))}
    kind_code = {
        "main": NodeKind.MAIN,
        "branch": NodeKind.BRANCH,
        "unit": NodeKind.UNIT,
        "common": NodeKind.COMMON,
        "landlord": NodeKind.LANDLORD,
    }
    area = np.zeros(len(nodes))
    building = np.full(len(nodes), -1, dtype=np.int64)
    for i, n in enumerate(nodes):
        if n.kind == "unit":
            unit = units[n.unit or n.id]
            area[i] = float(unit.area)
            building[i] = buildings[unit.building]
        elif n.kind == "landlord" and n.area is not None:
            area[i] = float(n.area)
    tenants = tuple(sorted({s.tenant for stays in case.occupancy.values() for s in stays}))
    tenant_index = {t: k for k, t in enumerate(tenants)}
    occupant = np.full((len(nodes), breakpoints.size - 1), VACANT, dtype=np.int64)
    for unit_node, stays in case.occupancy.items():
        for s in stays:
            lo, hi = clip(s.from_, 0), clip(s.to, days)
            covered = (breakpoints[:-1] >= lo) & (breakpoints[:-1] < hi)
            occupant[node_index[unit_node], covered] = tenant_index[s.tenant]
    for i, n in enumerate(nodes):
        if n.kind == "landlord":
            occupant[i] = LANDLORD

    tree = TreeInputs(
        ids=tuple(n.id for n in nodes),
        kind=np.array([kind_code[n.kind] for n in nodes], dtype=np.int8),
        parent=np.array([node_index[n.parent] if n.parent else -1 for n in nodes], dtype=np.int64),
        rules=tuple(_rule(n, node_index) for n in nodes),
        area=area,
        building=building,
    )
    meter_inputs = MeterInputs(
        ids=tuple(m.id for m in meters),
        node=np.array([meter_node[m.id] for m in meters], dtype=np.int64),
        registers=values,
        multiplier=multiplier,
        capacity=np.array([np.nan if m.capacity is None else float(m.capacity) for m in meters]),
        bidirectional=np.array([m.bidirectional for m in meters], dtype=bool),
        active_from=np.array([clip(m.installed, 0) for m in meters], dtype=np.int64),
        active_to=np.array([clip(m.removed, days) for m in meters], dtype=np.int64),
        history_kwh_per_day=history,
    )
    versions = []
    ordered = sorted(case.tariffs, key=lambda t: t.from_)
    for i, t in enumerate(ordered):
        upto = t.to or (ordered[i + 1].from_ if i + 1 < len(ordered) else None)
        lo, hi = clip(t.from_, 0), clip(upto, days)
        if hi <= lo:
            continue
        prices = dict(t.prices) if t.prices else {r: t.price for r in registers}
        versions.append(
            TariffVersion(
                id=t.id,
                kind=t.kind,
                from_day=lo,
                to_day=hi,
                prices={r: p for r, p in prices.items() if p is not None},
                tiers=tuple(Tier(x.upto, x.price) for x in t.tiers),
                demand_price=t.demand_price,
                markup=t.markup,
            )
        )
    bill = Bill(
        invoice=case.bill.invoice,
        energy_cents={r: to_cents(a) for r, a in case.bill.amounts.items()},
        demand_cents=to_cents(case.bill.demand) if case.bill.demand is not None else 0,
        demand_kw=case.bill.demand_kw,
    )
    drivers = {
        name: np.array([float(series[start + timedelta(days=d)]) for d in range(days)])
        for name, series in case.drivers.items()
    }
    policy = Policy(
        rollover_plausibility=float(case.policy.rollover_plausibility),
        markup_cap=case.policy.markup_cap,
        demand_basis=case.policy.demand_basis,
        tou_min_ratio=float(case.policy.tou_min_ratio),
        catalog_tolerance=float(case.policy.catalog_tolerance),
    )
    return EngineInputs(
        period=Period(start, days, breakpoints),
        registers=registers,
        meters=meter_inputs,
        tree=tree,
        tenants=tenants,
        occupant=occupant,
        tariffs=tuple(versions),
        bill=bill,
        drivers=drivers,
        policy=policy,
    )


def _rule(node: NodeSpec, index: Mapping[str, int]) -> Rule | None:
    if node.kind in ("unit", "landlord"):
        return None
    spec = node.rule or RuleSpec()
    formula = None
    if spec.formula is not None:
        formula = Formula(spec.formula.driver, float(spec.formula.base), float(spec.formula.span))
    common_type = (spec.common_type or CommonType.MANDATORY) if node.kind == "common" else None
    return Rule(
        basis=spec.basis,
        blend_p=float(spec.p),
        coefficients={index[k]: float(v) for k, v in spec.coefficients.items()},
        formula=formula,
        loss_cap=None if spec.loss_cap is None else float(spec.loss_cap),
        vacant=spec.vacant,
        estimate_limit=float(spec.estimate_limit),
        on_estimate_excess=spec.on_estimate_excess,
        common_type=common_type,
        exclusive_to=index[spec.exclusive_to] if spec.exclusive_to else -1,
        shared_by=tuple(sorted(index[s] for s in spec.shared_by)),
    )
