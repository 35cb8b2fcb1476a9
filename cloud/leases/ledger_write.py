"""Writing the lease ledger (台账): the workbook (the template when empty) and the one-CSV
form, in the layout :mod:`cloud.leases.ledger_sheets` reads, so that an export imported
again changes nothing. Money is written in yuan (two decimals), dates as dates."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from cloud.apportion.exports import csv_text
from cloud.apportion.site_workbook import _header, _set, write_notes
from cloud.apportion.workbook_cells import Column, decimal_text
from cloud.leases.ledger_columns import (
    CHOICES,
    CSV_COLUMNS,
    LEASE_COLUMNS,
    LEASES_SHEET,
    MAX_LEDGER_ROWS,
    NO,
    NOTES_SHEET,
    SHEETS,
    STEP_COLUMNS,
    STEPS_SHEET,
    TENANT_COLUMNS,
    TENANTS_SHEET,
    UNIT_COLUMNS,
    UNITS_SHEET,
    YES,
)
from cloud.leases.ledger_sheets import LeaseRec, TenantRec, UnitRec


def _yuan_value(cents: int | None) -> Decimal | None:
    return None if cents is None else Decimal(cents) / 100


def _percent_value(rate: Decimal | None) -> str | None:
    """A rate as the ledger's percentage text (0.05 → ``5%``)."""
    return None if rate is None else f"{decimal_text(rate * 100)}%"


def lease_values(rec: LeaseRec) -> dict[str, Any]:
    """A lease's cells by column key (money in yuan, rates in percent)."""
    return {
        "id": rec.id,
        "tenant": rec.tenant,
        "unit": rec.unit,
        "manager": rec.manager,
        "kind": rec.kind,
        "start_on": rec.start_on,
        "end_on": rec.end_on,
        "rent": _yuan_value(rec.rent_cents),
        "escalation": rec.escalation,
        "rise": _percent_value(rec.rise),
        "floor": _percent_value(rec.floor),
        "every_months": rec.every_months,
        "lag_months": rec.lag_months,
        "free_months": rec.free_months or None,
        "free_days": rec.free_days or None,
        "free_anchor": rec.free_anchor if rec.free_months or rec.free_days else None,
        "deposit_months": rec.deposit_months,
        "deposit": _yuan_value(rec.deposit_cents),
        "cycle": str(rec.cycle),
        "due_days": rec.due_days,
        "parent": rec.parent,
        "signed_on": rec.signed_on,
        "handover_on": rec.handover_on,
        "status": rec.status,
    }


def _table(ws: Worksheet, columns: Sequence[Column], rows: Iterable[dict[str, Any]]) -> None:
    _header(ws, [c.header for c in columns], [c.width for c in columns])
    last = 1
    for last, values in enumerate(rows, start=2):
        for col, column in enumerate(columns, start=1):
            value = values.get(column.key)
            if value is None or value == "":
                continue
            cell = _set(ws, last, col, value)
            if column.kind == "date":
                cell.number_format = "yyyy-mm-dd"
            elif column.kind == "money":
                cell.number_format = "0.00"
            elif column.kind in ("text", "cycle", "percent"):
                cell.number_format = "@"
    end = MAX_LEDGER_ROWS + 1
    for col, column in enumerate(columns, start=1):
        letter = get_column_letter(col)
        if column.kind == "date":
            ws.column_dimensions[letter].number_format = "yyyy-mm-dd"
        elif column.kind == "percent":
            # text, so that a typed 5% stays "5%" (a percent-formatted number cell would
            # hold 0.05, read as 0.05 %)
            ws.column_dimensions[letter].number_format = "@"
        choices = CHOICES.get(column.kind)
        if choices:
            rule = DataValidation(
                type="list",
                formula1='"' + ",".join(choices) + '"',
                allow_blank=True,
                showErrorMessage=True,
                errorTitle=f"{column.zh} {column.en}"[:32],
                error="请从列表中选择 / choose from the list: " + ", ".join(choices),
            )
            rule.add(f"{letter}2:{letter}{end}")
            ws.add_data_validation(rule)
        elif column.kind == "date":
            rule = DataValidation(
                type="date",
                operator="greaterThan",
                formula1="1",
                allow_blank=True,
                showErrorMessage=True,
                errorTitle=f"{column.zh} {column.en}"[:32],
                error="日期 YYYY-MM-DD / a date YYYY-MM-DD",
            )
            rule.add(f"{letter}2:{letter}{end}")
            ws.add_data_validation(rule)
    ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(last, 2)}"


_NOTES = (
    (
        "一个租约一行；阶梯租金在「租金阶梯」表，每阶一行。",
        "One row per lease; stepped rent on the Rent steps sheet, one row per step.",
    ),
    (
        "涨租：月租金为起始租金，「涨租方式」填 percent（每「调整周期」按「涨幅」上涨）或 cpi"
        "（按 CPI 同比调整，限于「CPI 下限」与「涨幅」上限之间，取调整月前「CPI 滞后」个月的"
        "指数）；每次新租金四舍五入到分。涨租方式留空或 fixed 为不涨；阶梯租金不可同时涨租。"
        "百分比写 5 或 5%（即 5%），不要写 0.05。",
        "Rising rent: the monthly rent is the starting rent; Rent rise percent: up by Rise "
        "(%) every Rise every (months); cpi: by the CPI's change over twelve months, kept "
        "between CPI floor (%) and Rise (%) as the cap, with the index CPI lag (months) before "
        "each rise; each new rent rounded half up to the cent. A blank Rent rise or fixed: no "
        "rise; a stepped rent does not also rise. Percentages as 5 or 5% (5 %), not 0.05.",
    ),
    (
        "金额单位为元（最多两位小数）；日期 YYYY-MM-DD；结束日期不含当日。",
        "Amounts in yuan (two decimals at most); dates YYYY-MM-DD; the end date is exclusive.",
    ),
    (
        "导入：meterflow cloud ledger import 文件.xlsx [--dry-run]；有任何错误时整个文件不导入，"
        "并列出每个错误单元格（表、行、列）。",
        "Import: meterflow cloud ledger import FILE.xlsx "
        "[--dry-run]; any error refuses the whole file and names every bad cell (sheet, row, "
        "column).",
    ),
    (
        "同一文件再次导入不做任何更改；已签约或生效的租约只能通过续租或退租变更条款。",
        "Importing "
        "the same file again changes nothing; a signed or active lease's terms change only by "
        "renewal or termination.",
    ),
)


def write_ledger_workbook(
    tenants: Iterable[TenantRec], units: Iterable[UnitRec], leases: Sequence[LeaseRec]
) -> bytes:
    """The ledger workbook (the template when all are empty), as .xlsx bytes."""
    wb = Workbook()
    first = wb.active
    assert first is not None
    wb.remove(first)
    _table(
        wb.create_sheet(TENANTS_SHEET),
        TENANT_COLUMNS,
        (
            {
                "id": t.id,
                "name": t.name,
                "channel": t.channel,
                "address": t.address,
                "id_number": t.id_number,
                "language": t.language,
            }
            for t in tenants
        ),
    )
    _table(
        wb.create_sheet(UNITS_SHEET),
        UNIT_COLUMNS,
        (
            {
                "unit": u.unit,
                "unit_type": u.unit_type,
                "property_type": u.property_type,
                "rentable": YES if u.rentable else NO,
                "asking": _yuan_value(u.asking_cents),
            }
            for u in units
        ),
    )
    _table(wb.create_sheet(LEASES_SHEET), LEASE_COLUMNS, map(lease_values, leases))
    _table(
        wb.create_sheet(STEPS_SHEET),
        STEP_COLUMNS,
        (
            {"lease": rec.id, "from": day, "rent": _yuan_value(cents)}
            for rec in leases
            for day, cents in rec.steps
        ),
    )
    write_notes(wb.create_sheet(NOTES_SHEET), _NOTES, SHEETS)
    wb.active = 2
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _csv_text(value: Any) -> str:
    """A cell of the ledger CSV; text that would start a formula in Excel is quoted as text
    (:func:`cloud.apportion.exports.csv_text`; the import drops the quote again)."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return csv_text(value) if isinstance(value, str) else str(value)


def write_ledger_csv(tenants: Iterable[TenantRec], leases: Sequence[LeaseRec]) -> bytes:
    """The ledger as one CSV (UTF-8 with BOM): the lease columns, the tenant's, the steps."""
    by_id = {t.id: t for t in tenants}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f"{c.zh} {c.en}" for c in CSV_COLUMNS])
    for rec in leases:
        values = lease_values(rec)
        tenant = by_id.get(rec.tenant)
        if tenant is not None:
            values |= {
                "tenant_name": tenant.name,
                "tenant_channel": tenant.channel,
                "tenant_address": tenant.address,
                "tenant_id_number": tenant.id_number,
                "tenant_language": tenant.language,
            }
        values["steps"] = "; ".join(f"{d}={_csv_text(_yuan_value(c))}" for d, c in rec.steps)
        writer.writerow([_csv_text(values.get(c.key)) for c in CSV_COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
