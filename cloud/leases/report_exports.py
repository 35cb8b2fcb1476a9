"""The lease reports (:mod:`cloud.leases.reports`) as tables for people: CSV (UTF-8 with a
BOM) and Excel workbooks, one sheet a report, headers and codes in the labels' language (a
mapping of ``report_*`` keys, the web's translations; the key itself when missing).

Pure: no I/O besides building bytes. Money in yuan with two decimals (Decimal, exact from
the cents), rates as fractions (Decimal; Excel shows them as percentages), days as dates.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cloud.apportion.exports import (
    CENT,
    FORMAT_DATE,
    FORMAT_MONEY,
    FORMAT_PERCENT,
    rows_csv,
    write_sheet,
)
from cloud.leases.occupancy import OccupancyReport
from cloud.leases.reports import AgingOut, ExpiringOut, FunnelOut, OccupancyOut, ReportSet

Labels = Mapping[str, str]
#: Areas [m²] with two decimals.
FORMAT_AREA = "#,##0.00"


@dataclass(frozen=True)
class Table:
    """A report as one table: its sheet's title, headers, typed rows and number formats
    (column index → Excel format)."""

    title: str
    head: list[str]
    rows: list[list[Any]]
    formats: dict[int, str]


def _t(labels: Labels, key: str) -> str:
    return labels.get(f"report_{key}", key)


def yuan(cents: int | None) -> Decimal | None:
    """Cents as exact yuan (None stays None: withheld)."""
    return None if cents is None else (Decimal(cents) / 100).quantize(CENT)


_OCC_COLUMNS = (
    "group",
    "site",
    "building",
    "property_type",
    "day",
    "rentable_units",
    "occupied_units",
    "unit_rate",
    "rentable_area_m2",
    "occupied_area_m2",
    "area_rate",
    "potential_rent",
    "occupied_rent",
    "economic_rate",
)


def _occ_row(
    labels: Labels, group: str, site: str, building: str, kind: str, f: OccupancyReport
) -> list[Any]:
    return [
        _t(labels, f"group_{group}"),
        site,
        building,
        _t(labels, f"type_{kind}") if kind else "",
        f.day,
        f.rentable_units,
        f.occupied_units,
        f.unit_rate,
        f.rentable_area_m2,
        f.occupied_area_m2,
        f.area_rate,
        yuan(f.potential_rent_cents),
        yuan(f.occupied_rent_cents),
        f.economic_rate,
    ]


def occupancy_table(report: OccupancyOut, labels: Labels) -> Table:
    """The total, each group, then the month ends of the series."""
    rows = [_occ_row(labels, "total", "", "", "", report.total)]
    for g in report.groups:
        rows.append(_occ_row(labels, g.by, g.site_id, g.building, g.property_type, g.figures))
    rows += [_occ_row(labels, "month_end", "", "", "", f) for f in report.series]
    return Table(
        _t(labels, "occupancy"),
        [_t(labels, f"col_{c}") for c in _OCC_COLUMNS],
        rows,
        {
            4: FORMAT_DATE,
            7: FORMAT_PERCENT,
            8: FORMAT_AREA,
            9: FORMAT_AREA,
            10: FORMAT_PERCENT,
            11: FORMAT_MONEY,
            12: FORMAT_MONEY,
            13: FORMAT_PERCENT,
        },
    )


def expiring_table(report: ExpiringOut, labels: Labels) -> Table:
    """One row a lease, most urgent first."""
    cols = ("risk", "lease", "tenant", "site", "building", "unit", "end_on", "expiry", "days_left")
    rows = [
        [
            _t(labels, f"risk_{r.risk}"),
            r.lease_id,
            r.tenant,
            r.site_id,
            r.building,
            r.unit_id,
            r.end_on,
            r.expiry,
            r.days_left,
        ]
        for r in report.leases
    ]
    return Table(
        _t(labels, "expiring"),
        [_t(labels, f"col_{c}") for c in cols],
        rows,
        {6: FORMAT_DATE, 7: FORMAT_DATE},
    )


def aging_table(report: AgingOut, labels: Labels) -> Table:
    """One row a site's building and a total row: per bucket the amount [yuan] (left out
    when withheld from the role) and the number of invoices."""
    money = not report.withheld
    head = [_t(labels, "col_site"), _t(labels, "col_building")]
    for b in report.buckets:
        if money:
            head.append(f"{_t(labels, 'col_amount')} {b}")
        head.append(f"{_t(labels, 'col_invoices')} {b}")
    if money:
        head.append(_t(labels, "col_total_amount"))
    head.append(_t(labels, "col_total_invoices"))
    rows = []
    for r in [*report.rows, report.total]:
        cells: list[Any] = [r.site_id or _t(labels, "group_total"), r.building]
        for b in report.buckets:
            if money:
                cells.append(yuan(r.cents[b]))
            cells.append(r.invoices[b])
        if money:
            cells.append(yuan(r.total_cents))
        cells.append(r.total_invoices)
        rows.append(cells)
    formats = {i: FORMAT_MONEY for i, h in enumerate(head) if money and i >= 2 and i % 2 == 0}
    return Table(_t(labels, "aging"), head, rows, formats)


def collections_table(report: FunnelOut, labels: Labels) -> Table:
    """The period's overdue invoices, those paid before the first rung, each rung (reached,
    paid after it), paid and still owed."""
    head = [_t(labels, f"col_{c}") for c in ("stage", "days", "invoices", "paid_after")]
    rows: list[list[Any]] = [[_t(labels, "funnel_overdue"), None, report.overdue, None]]
    rows.append([_t(labels, "funnel_before_steps"), None, None, report.paid_before_steps])
    for s in report.steps:
        rows.append([_t(labels, f"action_{s.action}"), s.step, s.reached, s.paid_after])
    rows.append([_t(labels, "funnel_paid"), None, report.paid, None])
    rows.append([_t(labels, "funnel_unpaid"), None, report.unpaid, None])
    return Table(_t(labels, "collections"), head, rows, {})


def table_csv(table: Table) -> bytes:
    """A table as CSV with a BOM (Excel opens it as UTF-8)."""
    return rows_csv(table.head, table.rows)


def workbook(tables: Sequence[Table]) -> bytes:
    """Tables as an .xlsx, one sheet each (titles cut to Excel's 31 characters)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    for table in tables:
        title = "".join(ch for ch in table.title if ch not in "[]:*?/\\")[:31] or "report"
        write_sheet(book, title, table.head, table.rows, table.formats)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def set_tables(reports: ReportSet, labels: Labels) -> list[Table]:
    """The monthly set's four tables."""
    return [
        occupancy_table(reports.occupancy, labels),
        expiring_table(reports.expiring, labels),
        aging_table(reports.aging, labels),
        collections_table(reports.collections, labels),
    ]
