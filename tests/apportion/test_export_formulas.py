"""Exports open in Excel without running anything: text that starts like a formula (a name
typed as ``=HYPERLINK(…)``, ``+86 …``, ``@SUM(…)``) is text in the CSV and in the workbook,
while numbers, negative ones included, stay numbers. Every CSV and workbook export (finance
lines, the reports, the tenant's statement) is written by these two functions."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook

from cloud.apportion.exports import FORMULA_STARTS, rows_csv, write_sheet

HOSTILE = ['=HYPERLINK("http://x.test","点我")', "+86 138 0000 0000", "-2+3", "@SUM(A1)", "\tx"]


def test_csv_quotes_formula_text_and_keeps_numbers() -> None:
    rows = [[name, Decimal("-12.50"), -3] for name in HOSTILE] + [["A101 张三", Decimal("1"), 0]]
    text = rows_csv(["=名称", "金额", "n"], rows).decode("utf-8-sig")
    got = list(csv.reader(io.StringIO(text)))
    assert got[0][0] == "'=名称"
    for name, row in zip(HOSTILE, got[1:], strict=False):
        assert row == ["'" + name, "-12.50", "-3"]
    assert got[-1] == ["A101 张三", "1", "0"]
    assert all(not r[0].startswith(FORMULA_STARTS) for r in got)


@pytest.mark.parametrize("fmt", [{}, {0: "@"}])
def test_the_workbook_keeps_formula_text_as_text(fmt: dict[int, str]) -> None:
    book = Workbook(write_only=True)
    rows = [[name, Decimal("-12.50")] for name in HOSTILE]
    write_sheet(book, "s", ["名称", "金额"], rows, {**fmt, 1: "#,##0.00"}, total=["=合计", 0])
    out = io.BytesIO()
    book.save(out)
    sheet = load_workbook(io.BytesIO(out.getvalue()))["s"]
    cells = [sheet.cell(row=r, column=1) for r in range(2, len(HOSTILE) + 3)]
    assert [c.value for c in cells] == [*HOSTILE, "=合计"]
    assert {c.data_type for c in cells} == {"s"}
    assert (
        sheet.cell(row=2, column=2).value == -12.5 and sheet.cell(row=2, column=2).data_type == "n"
    )
