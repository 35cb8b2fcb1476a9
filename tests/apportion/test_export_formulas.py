"""Exports open in Excel without running anything: text that starts like a formula (a name
typed as ``=HYPERLINK(…)``, ``+86 …``, ``@SUM(…)``) is text in the CSV and in the workbook,
while numbers, negative ones included, stay numbers. Every CSV and workbook export (finance
lines, the reports, the tenant's statement) is written by these two functions; the ledger's
CSV, which the import reads back, round-trips such text exactly."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from decimal import Decimal

import pytest
from openpyxl import Workbook, load_workbook

from cloud.apportion.exports import FORMULA_STARTS, rows_csv, write_sheet
from cloud.leases.ledger_sheets import read_ledger
from cloud.leases.ledger_write import write_ledger_csv
from tests.support.ledger_book import ledger_records

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


def test_the_ledger_csv_quotes_formula_text_and_reads_it_back_as_it_was() -> None:
    """The ledger's CSV is read back by our own import: the quote an export puts before
    formula text is dropped again, so a tenant named ``=…`` with a ``+86`` number keeps
    both exactly, and Excel shows them as text."""
    tenants, _, leases = ledger_records("park-a", 3)
    first = replace(tenants[0], name=HOSTILE[0], address="+86 138 0000 0000")
    data = write_ledger_csv([first, *tenants[1:]], leases)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert "'" + HOSTILE[0] in rows[1] and "'+86 138 0000 0000" in rows[1]
    back = read_ledger(data, "ledger.csv")
    assert back.issues == []
    got = next(t for t in back.tenants if t.id == first.id)
    assert (got.name, got.address) == (HOSTILE[0], "+86 138 0000 0000")
