"""The site workbook's Units and Meters rows merged into a stored site's sections.

:func:`merge_sheets` turns the rows (:class:`~cloud.apportion.workbook_cells.Row`) into the
site file's ``units``, ``meters`` and ``tree`` sections: the units are the Units sheet's
rows; the meters are the Meters sheet's rows; a tree node named on the Meters sheet takes its
kind, parent, unit and name from there (its rule and landlord area stay as stored), every
other node stays as stored. Each field is checked where it was typed, so an error names its
cell: the field's own rule (the site file schema's), an id given twice, a parent or unit that
does not exist, a replacement that does not line up, a stored meter whose row was deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from cloud.apportion.case.schema import MeterSpec, NodeSpec, UnitSpec
from cloud.apportion.site import SiteFileError
from cloud.apportion.workbook_cells import (
    METERS_SHEET,
    NODE_KINDS,
    UNITS_SHEET,
    Row,
    shown,
    steps_text,
)

#: The node fields the Meters sheet gives (column key → site file field).
_NODE_FIELDS = ("kind", "parent", "unit", "name")


def merge_sheets(
    base: Mapping[str, Any],
    unit_rows: list[Row],
    meter_rows: list[Row],
    errors: list[str],
    source: str,
) -> dict[str, Any]:
    """``base`` with the sheets' units, meters and metered nodes; SiteFileError names every
    bad cell. ``errors`` is the list the rows report into (sheet-wide errors join it)."""
    units = _units(unit_rows)
    unit_ids = {u["id"] for u in units}
    merged_tree, meters = _meters_and_tree(base, meter_rows, unit_ids, errors)
    if errors:
        raise SiteFileError(source, errors)
    out = dict(base)
    out.update(units=units, meters=meters, tree=merged_tree)
    return out


def _check(row: Row, model: type[BaseModel], data: dict[str, Any], keys: Mapping[str, str]) -> bool:
    """Check ``data`` against ``model``'s fields; a field error is its cell's (``keys``: field
    → column key). True when valid."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            key = keys.get(name)
            if key is None:
                continue
            if error["type"] == "missing":
                row.fail(key, "a value is required")
            else:
                got = error.get("input")
                row.fail(key, f"{error['msg']}, got {shown(got)}")
        return False
    return True


def _units(rows: list[Row]) -> list[dict[str, Any]]:
    units: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    keys = {"id": "id", "area": "area", "building": "building", "floor": "floor", "name": "name"}
    for row in rows:
        unit = {
            "id": row.text("id"),
            "name": row.text("name"),
            "building": row.text("building"),
            "floor": row.text("floor"),
            "area": row.number("area"),
        }
        unit = {k: v for k, v in unit.items() if v is not None and k not in row.failed}
        _check(row, UnitSpec, unit, keys)  # a bad row is kept: its id is still on the sheet
        if "id" not in unit:
            continue
        if unit["id"] in first:
            row.fail("id", f"unit {unit['id']!r} appears twice (first in row {first[unit['id']]})")
            continue
        first[unit["id"]] = row.line
        units.append(unit)
    return units


def _meter(row: Row, stored: Mapping[str, Any]) -> dict[str, Any]:
    """The meter of a Meters row (its node fields are read by the caller)."""
    meter_id = row.text("meter")
    multiplier: Any = None
    cell = row.cells.get("multiplier")
    steps = stored.get(meter_id or "", {}).get("multiplier")
    if isinstance(cell, str) and isinstance(steps, list) and cell.strip() == steps_text(steps):
        multiplier = steps
    elif isinstance(cell, str) and isinstance(steps, list) and ":" in cell:
        row.fail(
            "multiplier",
            "dated multiplier steps are kept as exported; change them in the site file "
            "(YAML), or write one number",
        )
    else:
        multiplier = row.number("multiplier")
    meter = {
        "id": meter_id,
        "multiplier": multiplier,
        "capacity": row.number("capacity"),
        "bidirectional": row.yes_no("bidirectional") or None,
        "installed": row.day("installed"),
        "removed": row.day("removed"),
        "replaced_by": row.text("replaced_by"),
    }
    meter = {k: v for k, v in meter.items() if v is not None}
    keys = {k: k for k in meter} | {"id": "meter", "multiplier": "multiplier"}
    fields = {k: v for k, v in meter.items() if keys.get(k, k) not in row.failed}
    _check(row, MeterSpec, fields, keys)  # a bad row is kept: its meter is still on the sheet
    return meter if "id" in meter else {}


def _meters_and_tree(
    base: Mapping[str, Any], rows: list[Row], unit_ids: set[str], errors: list[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    stored_meters = {m["id"]: m for m in base.get("meters", [])}
    stored_nodes = {n["id"]: n for n in base.get("tree", [])}
    meters: dict[str, tuple[Row, dict[str, Any]]] = {}
    node_rows: dict[str, list[tuple[Row, dict[str, Any]]]] = {}
    for row in rows:
        meter = _meter(row, stored_meters)
        node_id = row.text("node")
        if node_id is None:
            row.fail("node", "a value is required (the tree node the meter is on)")
        if not meter:
            continue
        if meter["id"] in meters:
            first = meters[meter["id"]][0].line
            row.fail("meter", f"meter {meter['id']!r} appears twice (first in row {first})")
            continue
        meters[meter["id"]] = (row, meter)
        if node_id is not None:
            node_rows.setdefault(node_id, []).append((row, meter))
    nodes = {n: _node(n, items) for n, items in node_rows.items()}
    kinds = {n: s.get("kind") for n, s in stored_nodes.items()} | {
        n: node.get("kind") for n, node in nodes.items()
    }
    used_units: dict[str, str] = {}
    for node_id, node in nodes.items():
        row = node_rows[node_id][0][0]
        _check_place(row, node, kinds)
        if node.get("kind") == "unit":
            unit = node.get("unit") or node_id
            key = "unit" if node.get("unit") else "node"
            if unit not in unit_ids:
                row.fail(key, f"unit {unit!r} is not on the {UNITS_SHEET} sheet")
            elif unit in used_units:
                row.fail(key, f"unit {unit!r} is also on node {used_units[unit]!r}")
            used_units[unit] = node_id
        elif node.get("unit"):
            row.fail("unit", f"a {node.get('kind')} node names no unit; only unit nodes do")
    _check_replacements(meters)
    heads = {n: _head(n, items) for n, items in node_rows.items()}
    placed = {m: node_id for node_id, items in node_rows.items() for _, m in _ids(items)}
    for meter_id in stored_meters:
        if meter_id not in meters:
            where = _stored_node(base, meter_id)
            errors.append(
                f"{METERS_SHEET}: meter {meter_id!r} (node {where!r}) has no row; rows are "
                "not deleted (a meter leaves with its removed date)"
            )
    tree: list[dict[str, Any]] = []
    for node_id, stored in stored_nodes.items():
        if node_id in nodes:
            continue
        node = dict(stored)
        head = node.get("meter")
        if head in placed and placed[head] != node_id:
            row = meters[head][0]
            row.fail(
                "node",
                f"meter {head!r} is on node {node_id!r} in the stored tree; a meter stays on "
                "its node (a new meter id for the new place)",
            )
        if node.get("kind") == "unit":
            unit = node.get("unit") or node_id
            if unit not in unit_ids:
                errors.append(
                    f"{UNITS_SHEET}: unit {unit!r} (tree node {node_id!r}) has no row; "
                    "units are not deleted"
                )
        tree.append(node)
    for node_id, node in nodes.items():
        merged = {k: v for k, v in stored_nodes.get(node_id, {}).items() if k not in _NODE_FIELDS}
        merged.update(node, id=node_id, meter=heads[node_id])
        tree.append({k: v for k, v in merged.items() if v is not None})
    return tree, [m for _, m in meters.values()]


def _ids(items: list[tuple[Row, dict[str, Any]]]) -> list[tuple[Row, str]]:
    return [(row, meter["id"]) for row, meter in items]


def _node(node_id: str, items: list[tuple[Row, dict[str, Any]]]) -> dict[str, Any]:
    """The node's fields from its rows: blank in a later row is the same; two different
    values are an error at the later cell."""
    node: dict[str, Any] = {}
    first: dict[str, int] = {}
    for row, _ in items:
        values = {key: row.text(key) for key in _NODE_FIELDS}
        if values["kind"] is not None and values["kind"] not in NODE_KINDS:
            row.fail(
                "kind", f"{shown(values['kind'])} is not a node kind ({', '.join(NODE_KINDS)})"
            )
            values["kind"] = None
        for key, value in values.items():
            if value is None or key in row.failed:
                continue
            if key in node and node[key] != value:
                row.fail(key, f"node {node_id!r} is given {key} {node[key]!r} in row {first[key]}")
            elif key not in node:
                node[key], first[key] = value, row.line
    row = items[0][0]
    keys = {"id": "node", **{k: k for k in _NODE_FIELDS}}
    if "kind" not in node and "kind" not in row.failed:
        row.fail("kind", f"a value is required ({', '.join(NODE_KINDS)})")
    elif "kind" in node:
        _check(row, NodeSpec, {"id": node_id, **node}, keys)
    return node


def _check_place(row: Row, node: Mapping[str, Any], kinds: Mapping[str, str | None]) -> None:
    """A main node has no parent; any other hangs under an existing main or branch node."""
    kind, parent = node.get("kind"), node.get("parent")
    if kind is None or "parent" in row.failed:
        return
    if kind == "main":
        if parent is not None:
            row.fail("parent", "a main node has no parent node")
    elif parent is None:
        row.fail("parent", f"a {kind} node needs its parent node (a main or branch node)")
    elif parent not in kinds:
        row.fail(
            "parent",
            f"node {parent!r} does not exist (neither on this sheet nor in the stored tree)",
        )
    elif kinds[parent] not in ("main", "branch"):
        row.fail(
            "parent",
            f"{parent!r} is a {kinds[parent]} node; only main and branch nodes have children",
        )


def _check_replacements(meters: Mapping[str, tuple[Row, dict[str, Any]]]) -> None:
    for row, meter in meters.values():
        installed, removed = meter.get("installed"), meter.get("removed")
        if installed and removed and removed <= installed and "removed" not in row.failed:
            row.fail("removed", f"removed {removed} is not after installed {installed}")
        new_id = meter.get("replaced_by")
        if new_id is None or "replaced_by" in row.failed:
            continue
        if new_id not in meters:
            row.fail("replaced_by", f"meter {new_id!r} has no row on this sheet")
            continue
        new_row, new = meters[new_id]
        if new_row.text("node") != row.text("node"):
            row.fail(
                "replaced_by",
                f"meter {new_id!r} is on node {new_row.text('node')!r} (row {new_row.line}), "
                f"not on {row.text('node')!r}",
            )
        elif removed is None:
            row.fail("removed", f"a replaced meter needs the day {new_id!r} was installed")
        elif new.get("installed") != removed:
            new_row.fail(
                "installed", f"it replaces {meter['id']!r}: give its removed day {removed}"
            )


def _head(node_id: str, items: list[tuple[Row, dict[str, Any]]]) -> str | None:
    """The node's first meter: the one no other meter of the node replaces."""
    ids = [m["id"] for _, m in items]
    targets = {m.get("replaced_by") for _, m in items}
    heads = [(row, m["id"]) for row, m in items if m["id"] not in targets]
    if not heads:
        items[0][0].fail("node", f"the meters of node {node_id!r} replace each other in a circle")
        return ids[0]
    for row, _ in heads[1:]:
        row.fail(
            "meter",
            f"a second meter on node {node_id!r} (with {heads[0][1]!r}, row {heads[0][0].line});"
            " a node has one meter at a time: name it in replaced_by of the meter it replaces",
        )
    return heads[0][1]


def _stored_node(base: Mapping[str, Any], meter_id: str) -> str | None:
    meters = {m["id"]: m for m in base.get("meters", [])}
    for node in base.get("tree", []):
        cursor = node.get("meter")
        while cursor is not None and cursor in meters:
            if cursor == meter_id:
                return str(node["id"])
            cursor = meters[cursor].get("replaced_by")
    return None
