"""The site workbook (Excel) through ``meterflow cloud site export/import``: exported from
the stored set-up, edited in a spreadsheet, imported back exactly; a re-import changes
nothing; a bad cell is named by sheet and cell, every one of them, and nothing is stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import typer
import yaml
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select
from typer.testing import CliRunner

from cloud.apportion.models import MeterInstallation, MultiplierStepRow, TreeNode, Unit
from cloud.apportion.site import SiteFileError
from cloud.apportion.site_export import site_sections
from cloud.apportion.site_workbook import read_workbook
from cloud.registry.db import open_registry
from meterflow.cli.close import site_app

#: ``meterflow cloud site`` (the group as the cloud command mounts it).
app = typer.Typer()
app.add_typer(site_app, name="site")
UNITS, METERS, SITE = "单元 Units", "表计 Meters", "站点 Site"

SITE_FILE = """
site: park-a
name: 一号园区
units:
  - {id: A, area: 60, building: "1", floor: "3", name: A 座 101}
  - {id: B, area: 40}
meters:
  - {id: M0}
  - {id: UA, multiplier: [{from: 2025-01-01, value: 1}, {from: 2026-03-01, value: 2}]}
  - {id: UB, installed: 2025-06-01}
  - {id: C1, capacity: 99999}
tree:
  - {id: MAIN, kind: main, meter: M0, rule: {basis: usage}}
  - {id: A, kind: unit, parent: MAIN, meter: UA, name: 一层 A}
  - {id: B, kind: unit, parent: MAIN, meter: UB}
  - {id: LIFT, kind: common, parent: MAIN, meter: C1, rule: {basis: area}}
occupancy:
  A: [{tenant: X, from: 2025-06-01}]
tariffs:
  - {id: flat, kind: flat, from: 2026-01-01, price: 0.50}
"""


@pytest.fixture()
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    monkeypatch.setenv("MF_DB_URL", url)
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path))
    (tmp_path / "site.yaml").write_text(SITE_FILE, encoding="utf-8")
    assert cli("site", "import", str(tmp_path / "site.yaml"))["changed"]
    return url


def cli(*args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"] if args[1] == "import" else list(args))
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if code == 0 and args[1] == "import" else result.output


def export(tmp_path: Path) -> Path:
    path = tmp_path / "park-a.xlsx"
    assert "wrote" in cli("site", "export", "park-a", "-o", str(path))
    return path


def edit(path: Path, change: Callable[[openpyxl.Workbook], None]) -> Path:
    wb = openpyxl.load_workbook(path)
    change(wb)
    wb.save(path)
    return path


def row_of(ws: Worksheet, value: str, col: int = 1) -> int:
    return next(
        c.row for c in ws.iter_rows(min_col=col, max_col=col) for c in c if c.value == value
    )


def stored(url: str) -> dict[str, Any]:
    sessions = open_registry(url)
    try:
        with sessions() as s:
            return site_sections(s, "park-a")
    finally:
        sessions.kw["bind"].dispose()


def test_the_exported_workbook_is_formatted_for_operators(db: str, tmp_path: Path) -> None:
    wb = openpyxl.load_workbook(export(tmp_path))
    assert wb.sheetnames == [SITE, UNITS, METERS, "说明 Notes"]
    units, meters = wb[UNITS], wb[METERS]
    for ws in (units, meters):
        assert ws.freeze_panes == "A2"
        assert all(c.font.bold for c in ws[1])
        assert ws["A1"].value.split("\n")[0] in ("单元编号", "表计编号")
    assert units["E1"].value == "面积 m²\nArea m²"
    a = row_of(units, "A")
    assert (units[f"E{a}"].value, units[f"E{a}"].number_format) == (60, "0.00")
    assert (units[f"B{a}"].value, units[f"D{a}"].value) == ("A 座 101", "3")
    ub = row_of(meters, "UB")
    assert meters[f"J{ub}"].is_date and meters[f"J{ub}"].number_format == "yyyy-mm-dd"
    assert meters[f"C{ub}"].value == "unit" and meters[f"I{ub}"].value == "否"
    ua = row_of(meters, "UA")
    assert meters[f"G{ua}"].value == "2025-01-01: 1; 2026-03-01: 2"
    lists = {v.formula1 for v in meters.data_validations.dataValidation}
    assert lists == {'"unit,common,branch,main,landlord"', '"是,否"'}
    assert meters["A2"].value == "M0"  # the main node's meter first
    assert wb[SITE]["B2"].value == "park-a" and wb[SITE].protection.sheet


def test_an_edited_workbook_is_imported_exactly_and_a_re_import_is_a_no_op(
    db: str, tmp_path: Path
) -> None:
    path = export(tmp_path)
    assert not cli("site", "import", str(path))["changed"]  # as exported: nothing to do

    def change(wb: openpyxl.Workbook) -> None:
        units, meters = wb[UNITS], wb[METERS]
        units[f"E{row_of(units, 'A')}"] = 65.5
        units.append(["C", "C 座", None, 2, 30])
        meters[f"G{row_of(meters, 'UB')}"] = 0.1  # a float cell: stored as exactly 0.1
        meters.append(["UC", "C", "unit", "MAIN", None, "三层 C", 1, None, "是", "2026-02-01"])

    report = cli("site", "import", str(edit(path, change)))
    assert report["created"] == {
        "meter": 1,
        "unit": 1,
        "node": 1,
        "installation": 1,
        "multiplier": 1,
    }
    assert report["updated"] == {"unit": 1, "multiplier": 1}
    url = db
    sessions = open_registry(url)
    with sessions() as s:
        assert s.get(Unit, "A").area_m2 == Decimal("65.5")  # type: ignore[union-attr]
        assert s.get(Unit, "C").floor == "2"  # type: ignore[union-attr]
        node = s.get(TreeNode, "C")
        assert node is not None and (node.parent_id, node.name) == ("MAIN", "三层 C")
        uc = s.get(MeterInstallation, "UC")
        assert uc is not None and uc.bidirectional and str(uc.installed_on) == "2026-02-01"
        steps = {r.installation_id: r.multiplier for r in s.scalars(select(MultiplierStepRow))}
        assert steps["UB"] == Decimal("0.1")
    sessions.kw["bind"].dispose()
    site = stored(url)
    ua = next(m for m in site["meters"] if m["id"] == "UA")
    assert [s["value"] for s in ua["multiplier"]] == [1, 2]  # dated steps kept
    assert next(n for n in site["tree"] if n["id"] == "MAIN")["rule"]["basis"] == "usage"
    assert site["occupancy"]["A"][0]["tenant"] == "X"
    again = cli("site", "import", str(path))
    assert not again["changed"] and again["unchanged"]["installation"] == 5


def _unit_area(wb: openpyxl.Workbook) -> None:
    wb[UNITS][f"E{row_of(wb[UNITS], 'A')}"] = "abc"


def _node_kind(wb: openpyxl.Workbook) -> None:
    wb[METERS][f"C{row_of(wb[METERS], 'UB')}"] = "pump"


def _parent(wb: openpyxl.Workbook) -> None:
    wb[METERS][f"D{row_of(wb[METERS], 'UB')}"] = "NOPE"


def _date(wb: openpyxl.Workbook) -> None:
    wb[METERS][f"J{row_of(wb[METERS], 'UB')}"] = "2026-13-01"


def _twice(wb: openpyxl.Workbook) -> None:
    wb[UNITS].append(["A", None, None, None, 10])


def _steps(wb: openpyxl.Workbook) -> None:
    wb[METERS][f"G{row_of(wb[METERS], 'UA')}"] = "2025-01-01: 1; 2026-04-01: 3"


def _long(wb: openpyxl.Workbook) -> None:
    wb[UNITS][f"B{row_of(wb[UNITS], 'B')}"] = "长" * 201


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_unit_area, "单元 Units!E2 (area): 'abc' is not a number"),
        (_node_kind, "表计 Meters!C4 (kind): 'pump' is not a node kind"),
        (_parent, "表计 Meters!D4 (parent): node 'NOPE' does not exist"),
        (_date, "表计 Meters!J4 (installed): '2026-13-01' is not a date (YYYY-MM-DD)"),
        (_twice, "单元 Units!A4 (id): unit 'A' appears twice (first in row 2)"),
        (_steps, "表计 Meters!G3 (multiplier): dated multiplier steps are kept as exported"),
        (_long, "单元 Units!B3 (name): text longer than 200 characters"),
    ],
)
def test_a_bad_cell_is_named_and_nothing_is_stored(
    db: str, tmp_path: Path, change: Callable[[openpyxl.Workbook], None], expected: str
) -> None:
    before = stored(db)
    path = edit(export(tmp_path), change)
    output = cli("site", "import", str(path), code=2)
    assert expected in output and "nothing was stored" in output
    assert stored(db) == before


def test_every_bad_cell_is_listed_at_once(db: str, tmp_path: Path) -> None:
    def change(wb: openpyxl.Workbook) -> None:
        for f in (_unit_area, _node_kind, _date, _twice):
            f(wb)
        wb[METERS][f"H{row_of(wb[METERS], 'C1')}"] = -5
        wb[METERS].append(["UX", "X", "unit", "LIFT", None, None, "two"])

    output = cli("site", "import", str(edit(export(tmp_path), change)), code=2)
    for ref in (
        "单元 Units!E2 (area)",
        "单元 Units!A4 (id)",
        "表计 Meters!C4 (kind)",
        "表计 Meters!J4 (installed)",
        "表计 Meters!H5 (capacity): Input should be greater than 0",
        "表计 Meters!G6 (multiplier): 'two' is not a number",
        "表计 Meters!D6 (parent): 'LIFT' is a common node",
        "表计 Meters!B6 (node): unit 'X' is not on the 单元 Units sheet",
    ):
        assert ref in output, output


def test_a_deleted_meter_row_and_a_wrong_replacement_are_refused(db: str, tmp_path: Path) -> None:
    def change(wb: openpyxl.Workbook) -> None:
        meters = wb[METERS]
        meters.delete_rows(row_of(meters, "C1"))
        ub = row_of(meters, "UB")
        meters[f"K{ub}"], meters[f"L{ub}"] = "2026-04-16", "UB2"
        meters.append(["UB2", "B", "unit", "MAIN", None, None, 2, None, None, "2026-04-17"])

    path = edit(export(tmp_path), change)
    ub2 = row_of(openpyxl.load_workbook(path)[METERS], "UB2")
    output = cli("site", "import", str(path), code=2)
    assert "表计 Meters: meter 'C1' (node 'LIFT') has no row" in output
    assert f"表计 Meters!J{ub2} (installed): it replaces 'UB': give its removed day 2026-04-16" in (
        output
    )


def test_columns_are_found_by_header_and_unknown_or_missing_ones_refused(
    db: str, tmp_path: Path
) -> None:
    def reorder(wb: openpyxl.Workbook) -> None:  # English headers, columns swapped
        units = wb[UNITS]
        for row in units.iter_rows(max_col=5):
            row[0].value, row[4].value = row[4].value, row[0].value
        units["A1"], units["E1"] = "Area m²", "unit id"

    path = export(tmp_path)
    assert not cli("site", "import", str(edit(path, reorder)))["changed"]

    def rename(wb: openpyxl.Workbook) -> None:
        wb[UNITS]["C1"] = "栋号"
        wb[METERS].delete_cols(8)

    output = cli("site", "import", str(edit(path, rename)), code=2)
    assert "单元 Units!C1: unknown column '栋号'" in output
    assert "单元 Units: missing column(s) 楼栋 Building" in output
    assert "表计 Meters: missing column(s) 翻转量程 Capacity" in output


def test_a_workbook_needs_its_site_imported_and_is_refused_for_another_site(
    db: str, tmp_path: Path
) -> None:
    path = export(tmp_path)
    other = tmp_path / "other.xlsx"
    wb = openpyxl.load_workbook(path)
    wb[SITE]["B2"] = "park-b"
    wb.save(other)
    output = cli("site", "import", str(other), code=2)
    assert "site 'park-b': import the site file (YAML) first" in output
    base = stored(db)
    with pytest.raises(SiteFileError, match="the workbook is for site 'park-b', not 'park-a'"):
        read_workbook(other, base)


def test_files_that_are_not_workbooks_or_too_large_are_refused(db: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.xlsx"
    bad.write_text(yaml.safe_dump({"site": "park-a"}))
    assert "not an Excel workbook" in cli("site", "import", str(bad), code=2)
    with bad.open("wb") as f:
        f.truncate(8 * 1024 * 1024 + 1)
    assert "larger than 8 MiB" in cli("site", "import", str(bad), code=2)
