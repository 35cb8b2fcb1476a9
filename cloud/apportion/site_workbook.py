"""The site workbook: a site's units and meters as the Excel workbook operators hold.

``meterflow cloud site export SITE -o FILE.xlsx`` writes it from the stored set-up
(:func:`write_workbook`), ``meterflow cloud site import FILE.xlsx`` reads it back
(:func:`read_workbook`) — see docs/monthly-close.md, "Site workbook (Excel)". It has four
sheets: 站点 Site (the site's id, name and time zone, read-only), 单元 Units (one row per
unit: id, name, building, floor, area [m²]), 表计 Meters (one row per meter installation:
the meter, the tree node it is on and that node's kind, parent, unit and name, then the
meter's multiplier, rollover capacity, bidirectional, installed, removed, replaced by) and
说明 Notes. The rest of a site file (rules, occupancy, tariffs, policy, nodes without a
meter) stays in the site file (YAML) and is kept as stored.

Reading merges the sheets into the stored sections: the units are the Units sheet's rows;
the meters, and the tree nodes named on the Meters sheet, are the Meters sheet's (a node's
rule and landlord area stay as stored); then the whole is checked as a site file. Every bad
cell is named (``单元 Units!E7 (area): 'abc' is not a number``), all of them at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from cloud.apportion.site import SiteFile, SiteFileError, site_from_data
from cloud.apportion.workbook_cells import (
    MAX_ROWS,
    METERS_SHEET,
    NODE_KINDS,
    NOTES_SHEET,
    SITE_SHEET,
    UNITS_SHEET,
    Column,
    open_workbook,
    sheet_rows,
    steps_text,
    workbook_from_bytes,
)
from cloud.apportion.workbook_merge import merge_sheets

YES, NO = "是", "否"

_TEXT, _AREA, _DAY = "@", "0.00", "yyyy-mm-dd"
#: Site sheet rows: key, label (Chinese, English).
SITE_FIELDS = (
    ("site", "站点编号\nSite id"),
    ("name", "站点名称\nSite name"),
    ("timezone", "时区\nTime zone"),
)

UNIT_COLUMNS = (
    Column("id", "单元编号", "Unit id", "text", 14, "单元的编号（唯一）", "the unit's id (unique)"),
    Column("name", "名称", "Name", "text", 22, "显示名称，可空", "display name, may be blank"),
    Column("building", "楼栋", "Building", "text", 12, "楼栋，可空", "building, may be blank"),
    Column("floor", "楼层", "Floor", "text", 10, "楼层，可空", "floor, may be blank"),
    Column(
        "area", "面积 m²", "Area m²", "number", 14, "建筑面积（平方米，>0）", "floor area [m², > 0]"
    ),
)
METER_COLUMNS = (
    Column(
        "meter", "表计编号", "Meter id", "text", 14, "表计编号（唯一）", "the meter's id (unique)"
    ),
    Column(
        "node", "树节点", "Tree node", "text", 14, "表计所在的树节点", "the tree node it meters"
    ),
    Column(
        "kind",
        "节点类型",
        "Node kind",
        "kind",
        12,
        "unit 单元 / common 公区 / branch 分支 / main 总表 / landlord 业主自用",
        "unit / common (area) / branch / main (the utility's meter) / landlord",
    ),
    Column(
        "parent",
        "上级节点",
        "Parent node",
        "text",
        14,
        "上级节点（main 或 branch）；总表留空",
        "the parent node (a main or branch node); blank for main",
    ),
    Column(
        "unit",
        "单元",
        "Unit",
        "text",
        12,
        "单元节点的单元编号，与节点相同时留空",
        "a unit node's unit, blank when it is the node's id",
    ),
    Column(
        "name", "节点名称", "Node name", "text", 22, "节点显示名称，可空", "the node's display name"
    ),
    Column(
        "multiplier",
        "倍率",
        "Multiplier",
        "number",
        12,
        "倍率（CT×PT，>0）；灰色文字为分日期倍率，只读，保持原样",
        "CT x PT ratio (> 0); grey text is dated steps: read-only, kept as they are",
    ),
    Column(
        "capacity",
        "翻转量程",
        "Capacity",
        "number",
        12,
        "表盘最大读数（翻转），可空",
        "register rollover capacity, may be blank",
    ),
    Column("bidirectional", "双向计量", "Bidirectional", "yesno", 12, "是 / 否", "是 yes / 否 no"),
    Column("installed", "安装日期", "Installed", "date", 13, "安装日期，可空", "day installed"),
    Column("removed", "拆除日期", "Removed", "date", 13, "拆除日期，可空", "day removed"),
    Column(
        "replaced_by",
        "替换表计",
        "Replaced by",
        "text",
        14,
        "换表后的新表编号（新表同节点一行，安装日期 = 本表拆除日期）",
        "the meter that replaced it (its own row, same node, installed = this removed)",
    ),
)
_BOLD = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_READ_ONLY = Font(italic=True, color="808080")
_READ_ONLY_FILL = PatternFill("solid", fgColor="EDEDED")


def is_workbook(path: Path) -> bool:
    """True when ``path`` names an Excel workbook (.xlsx)."""
    return path.suffix.lower() == ".xlsx"


def workbook_site_id(path: Path) -> str:
    """The id of the site the workbook is for (the 站点 Site sheet's 站点编号 Site id)."""
    wb = open_workbook(path, str(path))
    try:
        return _site_id(wb, str(path))
    finally:
        wb.close()


def workbook_bytes_site_id(data: bytes, source: str) -> str:
    """:func:`workbook_site_id` of a workbook in memory (an upload, bounded by the caller)."""
    wb = workbook_from_bytes(data, source)
    try:
        return _site_id(wb, source)
    finally:
        wb.close()


def _site_id(wb: Any, source: str) -> str:
    if SITE_SHEET in wb.sheetnames:
        names = {" ".join(SITE_FIELDS[0][1].split()).casefold(), "site id", "站点编号", "site"}
        for label, value, *_ in wb[SITE_SHEET].iter_rows(max_row=50, max_col=2, values_only=True):
            if isinstance(label, str) and " ".join(label.split()).casefold() in names:
                text = "" if value is None else str(value).strip()
                if text and len(text) <= 64:
                    return text
                raise SiteFileError(source, [f"{SITE_SHEET}: the site id is blank or too long"])
    raise SiteFileError(source, [f"{SITE_SHEET}: no row 站点编号 Site id (sheet {SITE_SHEET!r})"])


def read_workbook(path: Path, base: Mapping[str, Any]) -> SiteFile:
    """The site file ``base`` (a stored site's sections) with the workbook's units and meters.

    SiteFileError names every bad cell (``sheet!cell (column)``), a workbook of another site,
    a missing or unknown column; then the merged site is checked like a site file.
    """
    source = str(path)
    return _read(open_workbook(path, source), source, base)


def read_workbook_bytes(data: bytes, source: str, base: Mapping[str, Any]) -> SiteFile:
    """:func:`read_workbook` of a workbook in memory (an upload, bounded by the caller)."""
    return _read(workbook_from_bytes(data, source), source, base)


def _read(wb: Workbook, source: str, base: Mapping[str, Any]) -> SiteFile:
    try:
        site_id = _site_id(wb, source)
        if site_id != base.get("site"):
            raise SiteFileError(
                source,
                [f"{SITE_SHEET}: the workbook is for site {site_id!r}, not {base.get('site')!r}"],
            )
        errors: list[str] = []
        units = list(sheet_rows(wb, UNITS_SHEET, UNIT_COLUMNS, errors))
        meters = list(sheet_rows(wb, METERS_SHEET, METER_COLUMNS, errors))
    finally:
        wb.close()
    if errors:
        raise SiteFileError(source, errors)
    return site_from_data(merge_sheets(base, units, meters, errors, source), source)


# ---------------------------------------------------------------------------- writing


def write_workbook(sections: Mapping[str, Any], path: Path) -> None:
    """Write the site workbook of ``sections`` (a stored site's, see the module docstring)."""
    wb = Workbook()
    site = wb.active
    assert site is not None
    site.title = SITE_SHEET
    _write_site(site, sections)
    units = wb.create_sheet(UNITS_SHEET)
    _write_table(units, UNIT_COLUMNS, _unit_rows(sections))
    meters = wb.create_sheet(METERS_SHEET)
    _write_table(meters, METER_COLUMNS, _meter_rows(sections))
    _write_notes(wb.create_sheet(NOTES_SHEET))
    wb.active = 1
    wb.save(path)


def _set(ws: Worksheet, row: int, col: int, value: Any) -> Any:
    """Put ``value`` in a cell; text is kept as text (never taken for a formula)."""
    cell = ws.cell(row=row, column=col)
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
    cell.value = value
    if cell.data_type == "f":
        cell.data_type = "s"
    return cell


def _header(ws: Worksheet, labels: Iterable[str], widths: Iterable[float]) -> None:
    for col, (label, width) in enumerate(zip(labels, widths, strict=True), start=1):
        cell = _set(ws, 1, col, label)
        cell.font = _BOLD
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        ws.column_dimensions[get_column_letter(col)].width = width
    ws.row_dimensions[1].height = 32
    ws.freeze_panes = "A2"


def _write_site(ws: Worksheet, sections: Mapping[str, Any]) -> None:
    _header(ws, ["项目\nField", "值\nValue"], [18, 40])
    for row, (key, label) in enumerate(SITE_FIELDS, start=2):
        _set(ws, row, 1, label).alignment = Alignment(wrap_text=True)
        _set(ws, row, 2, str(sections.get(key) or "")).number_format = _TEXT
    _set(ws, len(SITE_FIELDS) + 3, 1, "只读：站点信息在站点文件（YAML）中修改")
    _set(ws, len(SITE_FIELDS) + 4, 1, "Read-only: change the site's details in the site file")
    ws.protection.sheet = True


def _write_table(ws: Worksheet, columns: tuple[Column, ...], rows: Iterable[dict]) -> None:
    _header(ws, [c.header for c in columns], [c.width for c in columns])
    last = 1
    for last, values in enumerate(rows, start=2):
        for col, column in enumerate(columns, start=1):
            value = values.get(column.key)
            if value is None or value == "":
                continue
            cell = _set(ws, last, col, value)
            if column.kind == "date":
                cell.number_format = _DAY
            elif column.key == "area":
                cell.number_format = _AREA
            elif column.kind == "text":
                cell.number_format = _TEXT
            elif column.key == "multiplier" and isinstance(value, str):
                cell.font, cell.fill = _READ_ONLY, _READ_ONLY_FILL
    end = MAX_ROWS + 1
    for col, column in enumerate(columns, start=1):
        letter = get_column_letter(col)
        dims = ws.column_dimensions[letter]
        if column.kind == "date":
            dims.number_format = _DAY
        elif column.key == "area":
            dims.number_format = _AREA
        elif column.kind == "text":
            dims.number_format = _TEXT
        if column.kind in ("kind", "yesno"):
            choices = NODE_KINDS if column.kind == "kind" else (YES, NO)
            rule = DataValidation(
                type="list",
                formula1='"' + ",".join(choices) + '"',
                allow_blank=True,
                showErrorMessage=True,
                errorTitle=f"{column.zh} {column.en}",
                error="请从列表中选择 / choose from the list: " + ", ".join(choices),
            )
            rule.add(f"{letter}2:{letter}{end}")
            ws.add_data_validation(rule)
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(last, 2)}"


def _unit_rows(sections: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(u) for u in sections.get("units", [])]


def _meter_rows(sections: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per installation, nodes from the main node down, a replacement chain in order."""
    meters = {m["id"]: m for m in sections.get("meters", [])}
    nodes = list(sections.get("tree", []))
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for node in nodes:
        children.setdefault(node.get("parent"), []).append(node)
    ordered: list[Mapping[str, Any]] = []
    stack = sorted(children.get(None, []), key=_node_order, reverse=True)
    seen: set[str] = set()
    while stack:
        node = stack.pop()
        if node["id"] in seen:
            continue
        seen.add(node["id"])
        ordered.append(node)
        stack += sorted(children.get(node["id"], []), key=_node_order, reverse=True)
    ordered += [n for n in nodes if n["id"] not in seen]
    rows: list[dict[str, Any]] = []
    placed: set[str] = set()
    for node in ordered:
        cursor = node.get("meter")
        while cursor in meters and cursor not in placed:
            placed.add(cursor)
            rows.append(_meter_row(meters[cursor], node))
            cursor = meters[cursor].get("replaced_by")
    rows += [_meter_row(m, {}) for m in meters.values() if m["id"] not in placed]
    return rows


def _node_order(node: Mapping[str, Any]) -> tuple[int, str]:
    rank = {"main": 0, "branch": 1, "unit": 2, "common": 3, "landlord": 4}
    return rank.get(node.get("kind", ""), 5), natural_key(node["id"])


def natural_key(text: str) -> str:
    """Sort key putting A2 before A10."""
    return re.sub(r"\d+", lambda m: m.group().zfill(12), text)


def _meter_row(meter: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    multiplier = meter.get("multiplier", Decimal(1))
    return {
        "meter": meter["id"],
        "node": node.get("id"),
        "kind": node.get("kind"),
        "parent": node.get("parent"),
        "unit": node.get("unit"),
        "name": node.get("name"),
        "multiplier": steps_text(multiplier) if isinstance(multiplier, list) else multiplier,
        "capacity": meter.get("capacity"),
        "bidirectional": YES if meter.get("bidirectional") else NO,
        "installed": meter.get("installed"),
        "removed": meter.get("removed"),
        "replaced_by": meter.get("replaced_by"),
    }


_NOTES_INTRO = (
    (
        "本工作簿包含站点的单元和表计；规则、入住、电价和策略保存在站点文件（YAML）中，导入时保持不变。",
        "This workbook holds the site's units and meters; rules, occupancy, tariffs and "
        "policy stay in the site file (YAML) and are kept as stored on import.",
    ),
    (
        "导入：meterflow cloud site import 文件.xlsx [--dry-run]；同一文件再次导入不做任何更改。",
        "Import: meterflow cloud site import FILE.xlsx [--dry-run]; importing it again "
        "changes nothing.",
    ),
    (
        "行不会被删除：表计拆除请填写拆除日期；换表时旧表填写拆除日期和替换表计，新表另起一行。",
        "Rows are not deleted: a meter leaves with its removed date; a replaced meter names "
        "its replacement, which has its own row on the same node.",
    ),
    (
        "有错误时整个文件不导入，并列出每个错误单元格（工作表!单元格）。",
        "Any error refuses the whole file and names every bad cell (sheet!cell).",
    ),
)


def _write_notes(ws: Worksheet) -> None:
    write_notes(ws, _NOTES_INTRO, ((UNITS_SHEET, UNIT_COLUMNS), (METERS_SHEET, METER_COLUMNS)))


def write_notes(
    ws: Worksheet,
    intro: Iterable[tuple[str, str]],
    sheets: Iterable[tuple[str, Iterable[Column]]],
) -> None:
    """A workbook's 说明 Notes sheet: the intro lines (Chinese, English), then each sheet's
    columns with their notes."""
    _header(
        ws, ["工作表 / 列\nSheet / column", "说明\n(中文)", "Explanation\n(English)"], [30, 60, 70]
    )
    row = 2
    for zh, en in intro:
        _set(ws, row, 2, zh)
        _set(ws, row, 3, en)
        row += 1
    for sheet, columns in sheets:
        row += 1
        _set(ws, row, 1, sheet).font = _BOLD
        row += 1
        for column in columns:
            _set(ws, row, 1, f"{column.zh} {column.en}")
            _set(ws, row, 2, column.note_zh)
            _set(ws, row, 3, column.note_en)
            row += 1
    for line in ws.iter_rows(min_row=2, max_row=row):
        for cell in line:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
