"""The case's cross-field checks: every id known, the tree sound, the period covered.

:func:`check_case` raises :class:`~cloud.apportion.errors.CaseError` with a message naming
the first item at fault: an unknown meter, a negative area, a tariff that leaves a gap in
the period, readings of a meter outside the tree ...
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import date, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloud.apportion.case.readings import Readings, ReadingTable
from cloud.apportion.case.schema import SINGLE, CaseSchema, MeterSpec, NodeSpec, TariffSpec
from cloud.apportion.errors import CaseError
from cloud.apportion.keys import Basis, CommonType
from cloud.apportion.money import DEMAND, TariffKind, to_cents


def check_case(case: CaseSchema) -> None:
    start, end = case.period.start, case.period.end
    if end <= start:
        raise CaseError(f"period: end {end} must be after start {start}")
    try:
        ZoneInfo(case.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CaseError(f"timezone: {case.timezone!r} is not a known time zone") from None
    if len(set(case.registers)) != len(case.registers) or DEMAND in case.registers:
        raise CaseError(f"registers: {case.registers} must be distinct and not {DEMAND!r}")
    _unique("units", [u.id for u in case.units])
    _unique("meters", [m.id for m in case.meters])
    _unique("tree", [n.id for n in case.tree])
    units = {u.id: u for u in case.units}
    meters = {m.id: m for m in case.meters}
    nodes = {n.id: n for n in case.tree}

    for m in case.meters:
        if m.replaced_by is not None:
            if m.replaced_by not in meters:
                raise CaseError(
                    f"meters: meter {m.id!r} is replaced by unknown meter {m.replaced_by!r}"
                )
            new = meters[m.replaced_by]
            if m.removed is None or new.installed != m.removed:
                raise CaseError(
                    f"meters: meter {m.id!r} replaced by {new.id!r}: give "
                    f"'removed' on {m.id!r} and the same date as 'installed' on "
                    f"{new.id!r}"
                )
        if m.installed and m.removed and m.removed <= m.installed:
            raise CaseError(
                f"meters: meter {m.id!r} removed {m.removed} before it was installed {m.installed}"
            )
        if isinstance(m.multiplier, list):
            if not m.multiplier:
                raise CaseError(f"meters: meter {m.id!r} has an empty multiplier list")
            if m.multiplier[0].from_ > max(start, m.installed or start):
                raise CaseError(
                    f"meters: meter {m.id!r} has no multiplier before {m.multiplier[0].from_}"
                )
            froms = [s.from_ for s in m.multiplier]
            if froms != sorted(set(froms)):
                raise CaseError(
                    f"meters: meter {m.id!r} multiplier steps must be in date order, one per date"
                )

    main = [n for n in case.tree if n.kind == "main"]
    if len(main) != 1:
        raise CaseError(f"tree: exactly one node of kind 'main' is needed, found {len(main)}")
    used_meters: dict[str, str] = {}
    used_units: dict[str, str] = {}
    for n in case.tree:
        if n.kind == "main":
            if n.parent is not None:
                raise CaseError(f"tree: main node {n.id!r} cannot have a parent")
            if n.meter is None:
                raise CaseError(f"tree: main node {n.id!r} needs a meter")
        else:
            if n.parent is None or n.parent not in nodes:
                raise CaseError(f"tree: node {n.id!r} has unknown parent {n.parent!r}")
            if nodes[n.parent].kind not in ("main", "branch"):
                raise CaseError(
                    f"tree: node {n.id!r} hangs under {n.parent!r}, a "
                    f"{nodes[n.parent].kind} node; only main and branch nodes "
                    "have children"
                )
        if n.meter is not None:
            if n.meter not in meters:
                raise CaseError(f"tree: node {n.id!r} meter {n.meter!r} is not in meters")
            for installation in case.chain(n.meter, meters):
                if installation.id in used_meters:
                    raise CaseError(
                        f"tree: meter {installation.id!r} is on nodes "
                        f"{used_meters[installation.id]!r} and {n.id!r}"
                    )
                used_meters[installation.id] = n.id
        if n.kind == "unit":
            unit = n.unit or n.id
            if unit not in units:
                raise CaseError(f"tree: unit node {n.id!r} names unknown unit {unit!r}")
            if unit in used_units:
                raise CaseError(
                    f"tree: unit {unit!r} is on nodes {used_units[unit]!r} and {n.id!r}"
                )
            used_units[unit] = n.id
        elif n.unit is not None:
            raise CaseError(f"tree: node {n.id!r} is {n.kind}; only unit nodes name a unit")
        if n.kind in ("unit", "landlord") and n.rule is not None:
            raise CaseError(f"tree: node {n.id!r} is a {n.kind} node; it has no rule")
        if n.area is not None and n.kind != "landlord":
            raise CaseError(
                f"tree: node {n.id!r}: 'area' is for landlord nodes; a unit's area is in units"
            )
        _check_rule(case, n, nodes)
    for n in case.tree:
        seen = {n.id}
        cursor = n.parent
        while cursor is not None:
            if cursor in seen:
                raise CaseError(f"tree: node {n.id!r} is its own ancestor")
            seen.add(cursor)
            cursor = nodes[cursor].parent
    for m in case.meters:
        if m.id not in used_meters:
            raise CaseError(f"meters: meter {m.id!r} is not in the tree")

    registers = set(case.registers)
    readings = case.readings
    if isinstance(readings, ReadingTable):  # the same checks over the arrays
        _check_table(readings, used_meters, meters, start, end, case.registers)
        readings = Readings()
    for meter, series in readings.items():
        if meter not in used_meters:
            raise CaseError(f"readings: meter {meter!r} is not in the tree")
        spec = meters[meter]
        lo = max(start, spec.installed or start)
        hi = min(end, spec.removed or end)
        for at, reading in series.items():
            day = at if type(at) is date else case.reading_day(meter, at)
            if not lo <= day <= hi:
                raise CaseError(
                    f"readings: meter {meter!r} reading on {day} is outside its "
                    f"installed part of the period ({lo} … {hi})"
                )
            if reading.values.keys() == registers:
                continue  # the usual reading, without building a set per reading
            names = set(reading.values)
            if names == {SINGLE}:
                raise CaseError(
                    f"readings: meter {meter!r} on {day}: give a value per "
                    f"register {case.registers}"
                )
            if names != set(case.registers):
                raise CaseError(
                    f"readings: meter {meter!r} on {day}: registers "
                    f"{sorted(names)}, expected {case.registers}"
                )
    for meter, values in case.history.items():
        if meter not in used_meters:
            raise CaseError(f"history: meter {meter!r} is not in the tree")
        names = set(values)
        if not names <= set(case.registers):
            raise CaseError(
                f"history: meter {meter!r}: unknown registers {sorted(names - set(case.registers))}"
            )

    for unit_node, stays in case.occupancy.items():
        if unit_node not in nodes or nodes[unit_node].kind != "unit":
            raise CaseError(f"occupancy: {unit_node!r} is not a unit node of the tree")
        ordered = sorted(stays, key=lambda s: s.from_)
        for stay in ordered:
            if stay.to is not None and stay.to <= stay.from_:
                raise CaseError(
                    f"occupancy: {unit_node!r} tenant {stay.tenant!r} leaves "
                    f"{stay.to} before arriving {stay.from_}"
                )
        for a, b in itertools.pairwise(ordered):
            if a.to is None or a.to > b.from_:
                raise CaseError(
                    f"occupancy: {unit_node!r} tenants {a.tenant!r} and "
                    f"{b.tenant!r} overlap from {b.from_}"
                )

    for name, series in case.drivers.items():
        missing = [
            start + timedelta(days=d)
            for d in range(case.days)
            if start + timedelta(days=d) not in series
        ]
        if missing:
            raise CaseError(
                f"drivers: {name!r} has no value for {missing[0]}"
                + (f" and {len(missing) - 1} more days" if len(missing) > 1 else "")
            )
    _check_tariffs(case)
    _check_bill(case)


def _check_table(
    table: ReadingTable,
    used_meters: Mapping[str, str],
    meters: Mapping[str, MeterSpec],
    start: date,
    end: date,
    registers: list[str],
) -> None:
    """:func:`check_case`'s reading checks, with its messages, over a :class:`ReadingTable`
    (per meter, not per reading: its rows are sorted by day, every row has every register
    of the table)."""
    for i, meter in enumerate(table.meters):
        if meter not in used_meters:
            raise CaseError(f"readings: meter {meter!r} is not in the tree")
        lo_row, hi_row = table.bounds[i], table.bounds[i + 1]
        if lo_row == hi_row:
            continue
        spec = meters[meter]
        lo = max(start, spec.installed or start).toordinal()
        hi = min(end, spec.removed or end).toordinal()
        first, last = table.days[lo_row], table.days[hi_row - 1]
        if first < lo or last > hi:
            day = next(d for d in table.days[lo_row:hi_row] if not lo <= d <= hi)
            raise CaseError(
                f"readings: meter {meter!r} reading on {date.fromordinal(day)} is outside its "
                f"installed part of the period ({date.fromordinal(lo)} … {date.fromordinal(hi)})"
            )
        if set(table.registers) != set(registers):
            raise CaseError(
                f"readings: meter {meter!r} on {date.fromordinal(first)}: registers "
                f"{sorted(table.registers)}, expected {registers}"
            )


def _unique(section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise CaseError(f"{section}: id {i!r} appears twice")
        seen.add(i)


def _check_rule(case: CaseSchema, node: NodeSpec, nodes: Mapping[str, NodeSpec]) -> None:
    rule = node.rule
    if rule is None:
        return
    where = f"tree: node {node.id!r} rule"
    if node.kind == "common":
        kind = rule.common_type or CommonType.MANDATORY
        serves = nodes.get(rule.exclusive_to or "")
        if kind is CommonType.EXCLUSIVE and (serves is None or serves.kind != "unit"):
            raise CaseError(
                f"{where}: an exclusive common area names the unit node it "
                f"serves in 'exclusive_to', got {rule.exclusive_to!r}"
            )
        if kind is CommonType.MANDATORY and rule.basis is Basis.FORMULA:
            raise CaseError(
                f"{where}: a mandatory common area is passed on in full; a "
                "formula key is for negotiated ones"
            )
    elif rule.common_type is not None or rule.exclusive_to is not None or rule.shared_by:
        raise CaseError(f"{where}: common_type, exclusive_to and shared_by are for common nodes")
    if node.kind == "common" and rule.loss_cap is not None:
        raise CaseError(f"{where}: loss_cap applies to the residual of main and branch nodes")
    for member in rule.shared_by:
        if member not in nodes or nodes[member].kind not in ("unit", "landlord"):
            raise CaseError(f"{where}: shared_by names {member!r}, not a unit or landlord node")
    if rule.basis is Basis.FORMULA:
        if rule.formula is None:
            raise CaseError(f"{where}: basis 'formula' needs a formula (driver, base, span)")
        if rule.formula.driver not in case.drivers:
            raise CaseError(f"{where}: formula driver {rule.formula.driver!r} is not in drivers")
    if rule.basis is Basis.COEFFICIENT:
        for member in rule.coefficients:
            if member not in nodes or nodes[member].kind not in ("unit", "landlord"):
                raise CaseError(f"{where}: coefficient for {member!r}, not a unit or landlord node")
        scope = rule.shared_by or [
            n.id
            for n in case.tree
            if n.kind in ("unit", "landlord") and _below(n.id, _scope_root(node), nodes)
        ]
        lacking = sorted(set(scope) - set(rule.coefficients))
        if lacking:
            raise CaseError(f"{where}: basis 'coefficient' has no coefficient for {lacking[0]!r}")


def _scope_root(node: NodeSpec) -> str:
    return node.parent if node.kind == "common" and node.parent else node.id


def _below(node: str, ancestor: str, nodes: Mapping[str, NodeSpec]) -> bool:
    cursor = nodes[node].parent
    while cursor is not None:
        if cursor == ancestor:
            return True
        cursor = nodes[cursor].parent
    return False


def _check_tariffs(case: CaseSchema) -> None:
    versions = sorted(case.tariffs, key=lambda t: t.from_)
    _unique("tariffs", [t.id for t in versions])
    start, end = case.period.start, case.period.end
    cursor = start
    for i, t in enumerate(versions):
        upto = t.to or (versions[i + 1].from_ if i + 1 < len(versions) else None)
        if upto is not None and upto <= t.from_:
            raise CaseError(f"tariffs: version {t.id!r} ends {upto} before it starts {t.from_}")
        if i + 1 < len(versions) and t.to is not None and t.to > versions[i + 1].from_:
            raise CaseError(
                f"tariffs: versions {t.id!r} and {versions[i + 1].id!r} overlap "
                f"from {versions[i + 1].from_}"
            )
        if t.from_ > cursor and cursor < end:
            raise CaseError(
                f"tariffs: no tariff version covers {cursor} … "
                f"{min(t.from_, end) - timedelta(days=1)}"
            )
        cursor = max(cursor, upto or date.max)
        _check_tariff_fields(case, t)
    if cursor < end:
        raise CaseError(f"tariffs: no tariff version covers {cursor} … {end - timedelta(days=1)}")


def _check_tariff_fields(case: CaseSchema, t: TariffSpec) -> None:
    where = f"tariffs: version {t.id!r}"
    if t.kind is TariffKind.TIERED:
        if case.registers != ["total"]:
            raise CaseError(f"{where}: tiered prices apply to the single 'total' register")
        if not t.tiers or t.tiers[-1].upto is not None:
            raise CaseError(f"{where}: tiers must end with an open tier (no 'upto')")
        bounds = [x.upto for x in t.tiers[:-1]]
        if any(b is None for b in bounds) or bounds != sorted(set(bounds)):
            raise CaseError(f"{where}: tier bounds must rise")
        return
    if t.price is None and not t.prices:
        raise CaseError(f"{where}: give 'price' or 'prices' per register")
    if t.prices and set(t.prices) != set(case.registers):
        raise CaseError(f"{where}: prices for {sorted(t.prices)}, registers are {case.registers}")
    if t.kind is TariffKind.TWO_PART and t.demand_price is None:
        raise CaseError(f"{where}: a two-part tariff needs 'demand_price' (CNY per kW·month)")
    if t.kind is not TariffKind.TWO_PART and t.demand_price is not None:
        raise CaseError(f"{where}: 'demand_price' belongs to two-part tariffs")


def _check_bill(case: CaseSchema) -> None:
    bill = case.bill
    if set(bill.amounts) != set(case.registers):
        raise CaseError(f"bill: amounts for {sorted(bill.amounts)}, registers are {case.registers}")
    for name, amount in bill.amounts.items():
        try:
            to_cents(amount)
        except ValueError as exc:
            raise CaseError(f"bill: amount {name}: {exc}") from None
    two_part = any(t.kind is TariffKind.TWO_PART for t in case.tariffs)
    if bill.demand is not None:
        if not two_part:
            raise CaseError("bill: a demand charge needs a two-part tariff")
        try:
            to_cents(bill.demand)
        except ValueError as exc:
            raise CaseError(f"bill: demand: {exc}") from None
