"""Finance's exports of a run: its lines as CSV (UTF-8 with BOM, for Excel) and the run as an
Excel workbook (lines, statements, meter tree, the run itself).

Pure functions: :func:`export_lines` turns the run's stored lines and stored inputs into
:class:`ExportLine` rows (names from the site data, dates inclusive, prices as numbers);
:func:`lines_csv` and :func:`run_workbook` write them with the labels of one language (a
mapping of ``export_*`` keys, the web's translations). No I/O besides building bytes.

Numbers are Decimals rounded to what the registry stores (kWh to 6 decimals, money to the
cent, prices to 6 decimals), so no binary float noise reaches a cell. Dates are the days the
pages show: a line's ``to`` day is stored exclusive (half-open periods), exported as the last
day it covers. Times are local to the site's time zone.
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cloud.apportion.money import DEMAND
from cloud.apportion.runs import LineRecord

#: Stored precision of energies [kWh] and of the derived unit prices [CNY/kWh].
KWH_PLACES = Decimal("0.000001")
PRICE_PLACES = Decimal("0.000001")
CENT = Decimal("0.01")
#: Excel number formats: energy and money with thousands separators and two decimals.
FORMAT_KWH = "#,##0.00"
FORMAT_MONEY = "#,##0.00"
FORMAT_PRICE = "0.00####"
FORMAT_CENTS = "#,##0"
FORMAT_PERCENT = "0.00%"
FORMAT_DATE = "yyyy-mm-dd"
FORMAT_TIME = "yyyy-mm-dd hh:mm"
#: The lines' columns, in order (label key ``export_col_<name>``).
LINE_COLUMNS = (
    "line_no",
    "kind",
    "unit",
    "unit_name",
    "party",
    "party_name",
    "from",
    "to",
    "component",
    "origin",
    "origin_name",
    "register",
    "tariff",
    "kwh",
    "price",
    "price_unit",
    "catalog_price",
    "amount",
    "cents",
    "adjusts",
)
_LANDLORD = "landlord"


@dataclass(frozen=True)
class ExportLine:
    """One line of a run for finance.

    ``first_day``/``last_day`` are inclusive local days (None for a node-level landlord
    line); ``price`` is the applied unit price [CNY/kWh] (the bill's amount of the line's
    register and tariff ÷ its kWh, what the amounts were computed with), ``catalog_price``
    the tariff's [CNY/kWh, or CNY/kW·month for demand], None where there is no one price.
    """

    line_no: int
    kind: str
    unit: str
    unit_name: str
    party: str
    party_name: str
    first_day: date | None
    last_day: date | None
    component: str
    origin: str
    origin_name: str
    register: str
    tariff: str
    kwh: Decimal
    price: Decimal | None
    price_unit: str
    catalog_price: Decimal | None
    cents: int
    adjusts: str

    @property
    def amount(self) -> Decimal:
        """The amount [CNY], exact."""
        return (Decimal(self.cents) / 100).quantize(CENT)


@dataclass(frozen=True)
class SiteNames:
    """Display names from a run's stored inputs (the site file's or case file's)."""

    site: str
    site_name: str
    timezone: str
    units: Mapping[str, str]
    nodes: Mapping[str, str]
    catalog: Mapping[tuple[str, str], Decimal]

    @classmethod
    def from_inputs(cls, inputs: str | Mapping[str, Any]) -> SiteNames:
        """From a run's stored inputs (its canonical case JSON)."""
        data = json.loads(inputs) if isinstance(inputs, str) else inputs
        units = {str(u["id"]): str(u.get("name") or "") for u in data.get("units", [])}
        nodes: dict[str, str] = {}
        for n in data.get("tree", []):
            unit = str(n.get("unit") or n["id"])
            nodes[str(n["id"])] = str(n.get("name") or "") or units.get(unit, "")
        catalog: dict[tuple[str, str], Decimal] = {}
        registers = [str(r) for r in data.get("registers", ["total"])]
        for t in data.get("tariffs", []):
            tid = str(t["id"])
            if t.get("demand_price") is not None:
                catalog[(DEMAND, tid)] = Decimal(str(t["demand_price"]))
            if t.get("kind") == "tiered":
                continue  # tiers: no one price
            prices = {str(k): Decimal(str(v)) for k, v in (t.get("prices") or {}).items()}
            if t.get("price") is not None:
                prices = {r: prices.get(r, Decimal(str(t["price"]))) for r in registers}
            for register, price in prices.items():
                catalog[(register, tid)] = price
        return cls(
            str(data.get("site", "")),
            str(data.get("name") or ""),
            str(data.get("timezone") or "Asia/Shanghai"),
            units,
            nodes,
            catalog,
        )


def _inclusive_end(end: str) -> date | None:
    return date.fromisoformat(end) - timedelta(days=1) if end else None


def export_lines(
    lines: Iterable[LineRecord], names: SiteNames, tenants: Mapping[str, str] | None = None
) -> list[ExportLine]:
    """The run's lines for finance, in the run's order, with names (``tenants``: party →
    the tenant's display name), inclusive days and the applied unit price of each
    (register, tariff) (per run a line adjusts)."""
    tenants = tenants or {}
    rows = list(lines)
    totals: dict[tuple[str | None, str, str], tuple[int, Decimal]] = {}
    for r in rows:
        key = (r.adjusts, r.register, r.tariff)
        cents, kwh = totals.get(key, (0, Decimal(0)))
        totals[key] = (cents + r.cents, kwh + r.kwh)
    out = []
    for line_no, r in enumerate(rows, start=1):
        cents, kwh = totals[(r.adjusts, r.register, r.tariff)]
        demand = r.register == DEMAND
        price = None
        if not demand and kwh > 0:
            price = (Decimal(cents) / 100 / kwh).quantize(PRICE_PLACES)
        out.append(
            ExportLine(
                line_no=line_no,
                kind=r.kind,
                unit=r.unit,
                unit_name=names.nodes.get(r.unit, "") if r.unit else "",
                party=r.party,
                party_name=tenants.get(r.party, ""),
                first_day=date.fromisoformat(r.start) if r.start else None,
                last_day=_inclusive_end(r.end),
                component=r.component,
                origin=r.origin,
                origin_name=names.nodes.get(r.origin, "") if r.origin else "",
                register=r.register,
                tariff=r.tariff,
                kwh=r.kwh.quantize(KWH_PLACES),
                price=price,
                price_unit="kw_month" if demand else "kwh",
                catalog_price=names.catalog.get((r.register, r.tariff)),
                cents=r.cents,
                adjusts=r.adjusts or "",
            )
        )
    return out


# ----------------------------------------------------------------------------- labels


def label(labels: Mapping[str, str], key: str, code: str) -> str:
    """The display text of a code (``export_<key>_<code>``), the code itself when unknown."""
    return labels.get(f"export_{key}_{code}", code)


def register_label(labels: Mapping[str, str], register: str) -> str:
    """尖/峰/平/谷 for T1–T4, 总 for ``total``; other registers as they are named."""
    return label(labels, "register", register)


def _plain(value: Decimal | None) -> str:
    return "" if value is None else f"{value:f}"


def _cells(line: ExportLine, labels: Mapping[str, str]) -> dict[str, Any]:
    """A line's cells by column (typed values: Decimal, int, date, text)."""
    return {
        "line_no": line.line_no,
        "kind": label(labels, "kind", line.kind),
        "unit": line.unit,
        "unit_name": line.unit_name,
        "party": label(labels, "party", line.party) if line.party == _LANDLORD else line.party,
        "party_name": line.party_name,
        "from": line.first_day,
        "to": line.last_day,
        "component": label(labels, "component", line.component),
        "origin": line.origin,
        "origin_name": line.origin_name,
        "register": register_label(labels, line.register),
        "tariff": line.tariff,
        "kwh": line.kwh,
        "price": line.price,
        "price_unit": label(labels, "price_unit", line.price_unit),
        "catalog_price": line.catalog_price,
        "amount": line.amount,
        "cents": line.cents,
        "adjusts": line.adjusts,
    }


def line_row(line: ExportLine, labels: Mapping[str, str]) -> list[Any]:
    """A line's cells in :data:`LINE_COLUMNS` order."""
    cells = _cells(line, labels)
    return [cells[c] for c in LINE_COLUMNS]


def headers(labels: Mapping[str, str]) -> list[str]:
    """The lines' column headers in the labels' language."""
    return [labels.get(f"export_col_{c}", c) for c in LINE_COLUMNS]


# ----------------------------------------------------------------------------- CSV


#: How a text cell may start that a spreadsheet takes for a formula (CSV injection,
#: CWE-1236): a name typed as ``=HYPERLINK(…)`` must show as text, never run.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """A text cell of a CSV for Excel: one that would start a formula gets a leading
    apostrophe, which Excel shows as text (numbers are written as numbers, not through
    here, so a negative amount stays a number)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_untext(value: str) -> str:
    """:func:`csv_text` undone, for a CSV our own import reads back (an apostrophe before
    what would start a formula is dropped; any other text is as it is)."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


def rows_csv(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A table as CSV: UTF-8 with a BOM (Excel reads it as UTF-8), CRLF rows, numbers plain
    (``0.600000``, no thousands separators, no unit), dates ``YYYY-MM-DD``, None empty,
    text that would start a formula quoted as text (:func:`csv_text`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([csv_text(h) for h in head])
    for row in rows:
        writer.writerow(
            [
                _plain(v)
                if isinstance(v, Decimal) or v is None
                else v.isoformat()
                if isinstance(v, date)
                else csv_text(v)
                if isinstance(v, str)
                else v
                for v in row
            ]
        )
    return "\ufeff".encode() + out.getvalue().encode("utf-8")


def lines_csv(lines: Sequence[ExportLine], labels: Mapping[str, str]) -> bytes:
    """The lines as CSV (:func:`rows_csv`), headers in the labels' language, dates
    inclusive."""
    return rows_csv(headers(labels), (line_row(line, labels) for line in lines))


# ----------------------------------------------------------------------------- Excel


@dataclass(frozen=True)
class StatementTotal:
    """One statement of a run: unit node (empty for the landlord's), party, total [cents],
    the tenant's answer (``confirmed_at`` UTC)."""

    unit: str
    party: str
    cents: int
    confirmed_at: datetime | None
    disputed: bool
    #: the name the tenant typed when confirming (empty for older confirmations)
    confirmed_name: str = ""


@dataclass(frozen=True)
class NodeRow:
    """A meter-tree node's balance for the workbook [kWh; λ as a fraction]."""

    id: str
    kind: str
    parent: str
    kwh: float
    children_kwh: float | None
    residual_kwh: float | None
    loss_rate: float | None


@dataclass(frozen=True)
class RunFacts:
    """What the workbook's run sheet says: ids, period (``end`` exclusive), state, steps
    (action, who, when in UTC)."""

    id: str
    status: str
    period_start: date
    period_end: date
    input_hash: str
    steps: Sequence[tuple[str, str, datetime]]


def local_naive(at: datetime | None, zone: str) -> datetime | None:
    """An instant as the site's local wall time, without a zone (Excel has none)."""
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def kwh_decimal(value: float | None) -> Decimal | None:
    """A float energy rounded to the stored precision (no ``…0000000024`` noise)."""
    return None if value is None else Decimal(repr(float(value))).quantize(KWH_PLACES)


def _width(value: Any) -> int:
    if value is None:
        return 0
    text = f"{value:,.2f}" if isinstance(value, Decimal) else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


#: A column's number format: one format, or one chosen by the cell's value (None: none).
CellFormat = str | Callable[[Any], str | None]


def write_sheet(
    book: Any,
    title: str,
    head: Sequence[str],
    rows: Sequence[Sequence[Any]],
    formats: Mapping[int, CellFormat],
    total: Sequence[Any] | None = None,
) -> Any:
    """A sheet of the write-only ``book`` (``Workbook(write_only=True)``: rows are streamed
    out, no cell kept): bold frozen header with a filter, typed rows with number formats
    (``formats``: by column, from 0), an optional bold totals row, column widths from the
    content; text is always text (one starting like a formula is not run)."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    sheet = book.create_sheet(title)
    every = [list(head), *rows, *([total] if total else [])]
    for col in range(len(head)):  # widths and panes go before the rows in a streamed sheet
        widest = max(_width(r[col]) if col < len(r) else 0 for r in every)
        sheet.column_dimensions[get_column_letter(col + 1)].width = min(max(widest + 2, 8), 60)
    sheet.freeze_panes = "A2"
    if rows:
        sheet.auto_filter.ref = f"A1:{get_column_letter(len(head))}{len(rows) + 1}"
    bold = Font(bold=True)

    def cell(value: Any, col: int | None, font: Any = None) -> Any:
        fmt = formats.get(col) if col is not None else None
        if callable(fmt):
            fmt = fmt(value)
        # openpyxl writes text starting with "=" as a formula: such text is kept as text
        text = isinstance(value, str) and value.startswith(FORMULA_STARTS)
        if fmt is None and font is None and not text:
            return value
        out = WriteOnlyCell(sheet, value)
        if text:
            out.data_type = "s"
        if fmt is not None:
            out.number_format = fmt
        if font is not None:
            out.font = font
        return out

    sheet.append([cell(h, None, bold) for h in head])
    for row in rows:
        sheet.append([cell(v, i) for i, v in enumerate(row)])
    if total is not None:
        sheet.append([cell(v, i, bold) for i, v in enumerate(total)])
    return sheet


def run_workbook(
    lines: Sequence[ExportLine],
    statements: Sequence[StatementTotal],
    nodes: Sequence[NodeRow],
    run: RunFacts,
    names: SiteNames,
    labels: Mapping[str, str],
    tenants: Mapping[str, str] | None = None,
) -> bytes:
    """The run as an .xlsx: sheets of lines (with a totals row), statements (with a totals
    row), the meter tree's balances, and the run (site, period, state, who did what when,
    in the site's local time); ``tenants``: party → the tenant's display name."""
    tenants = tenants or {}
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    zone = names.timezone
    t = labels.get

    cols = {c: i for i, c in enumerate(LINE_COLUMNS)}
    rows = [line_row(x, labels) for x in lines]
    total_row: list[Any] = [None] * len(LINE_COLUMNS)
    total_row[0] = t("export_total", "Total")
    total_row[cols["amount"]] = (Decimal(sum(x.cents for x in lines)) / 100).quantize(CENT)
    total_row[cols["cents"]] = sum(x.cents for x in lines)
    write_sheet(
        book,
        t("export_sheet_lines", "lines"),
        headers(labels),
        rows,
        {
            cols["from"]: FORMAT_DATE,
            cols["to"]: FORMAT_DATE,
            cols["kwh"]: FORMAT_KWH,
            cols["price"]: FORMAT_PRICE,
            cols["catalog_price"]: FORMAT_PRICE,
            cols["amount"]: FORMAT_MONEY,
            cols["cents"]: FORMAT_CENTS,
        },
        total_row,
    )

    yes, no = t("export_yes", "yes"), t("export_no", "no")
    statement_rows = [
        [
            s.unit,
            names.nodes.get(s.unit, "") if s.unit else "",
            label(labels, "party", s.party) if s.party == _LANDLORD else s.party,
            tenants.get(s.party, ""),
            (Decimal(s.cents) / 100).quantize(CENT),
            local_naive(s.confirmed_at, zone),
            yes if s.disputed else no,
        ]
        for s in statements
    ]
    statement_total = sum(s.cents for s in statements)
    write_sheet(
        book,
        t("export_sheet_statements", "statements"),
        [
            t(f"export_col_{c}", c)
            for c in (
                "unit",
                "unit_name",
                "party",
                "party_name",
                "amount",
                "confirmed_at",
                "disputed",
            )
        ],
        statement_rows,
        {4: FORMAT_MONEY, 5: FORMAT_TIME},
        [
            t("export_total", "Total"),
            None,
            None,
            None,
            (Decimal(statement_total) / 100).quantize(CENT),
        ],
    )

    write_sheet(
        book,
        t("export_sheet_tree", "tree"),
        [
            t(f"export_col_{c}", c)
            for c in (
                "node",
                "node_name",
                "node_kind",
                "parent",
                "kwh",
                "children_kwh",
                "residual_kwh",
                "loss_rate",
            )
        ],
        [
            [
                n.id,
                names.nodes.get(n.id, ""),
                label(labels, "node_kind", n.kind),
                n.parent,
                kwh_decimal(n.kwh),
                kwh_decimal(n.children_kwh),
                kwh_decimal(n.residual_kwh),
                None if n.loss_rate is None else Decimal(repr(n.loss_rate)).quantize(KWH_PLACES),
            ]
            for n in nodes
        ],
        {4: FORMAT_KWH, 5: FORMAT_KWH, 6: FORMAT_KWH, 7: FORMAT_PERCENT},
    )

    facts: list[list[Any]] = [
        [t("export_col_site", "site"), names.site, names.site_name],
        [t("export_col_run", "run"), run.id, None],
        [t("export_col_status", "status"), label(labels, "status", run.status), None],
        [t("export_col_from", "from"), run.period_start, None],
        [t("export_col_to", "to"), run.period_end - timedelta(days=1), None],
        [
            t("export_col_amount", "amount"),
            (Decimal(sum(x.cents for x in lines)) / 100).quantize(CENT),
            None,
        ],
        [t("export_col_timezone", "timezone"), zone, None],
        [t("export_col_input_hash", "input hash"), run.input_hash, None],
    ]
    for action, who, at in run.steps:
        facts.append([label(labels, "step", action), local_naive(at, zone), who])
    write_sheet(
        book,
        t("export_sheet_run", "run"),
        [t("export_col_item", "item"), t("export_col_value", "value"), ""],
        facts,
        {1: _fact_format},
    )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _fact_format(value: Any) -> str | None:
    """A run fact's number format, by its type (a time, a day, an amount)."""
    if isinstance(value, datetime):
        return FORMAT_TIME
    if isinstance(value, date):
        return FORMAT_DATE
    if isinstance(value, Decimal | float | int):
        return FORMAT_MONEY
    return None
