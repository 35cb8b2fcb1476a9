"""The lease ledger (台账) as a file: its sheets and columns, reading a workbook or CSV into
records (every bad cell named), and writing records back in the same form.

Workbook sheets: 租户 Tenants, 单元 Units (the units' lease profile), 租约 Leases, 租金阶梯
Rent steps and 说明 Notes. The CSV form is one file: the 租约 Leases columns, then the
tenant's name, channel, address and ID number, and the rent steps as text (``2026-01-01=5000;
2027-01-01=5200``); unit profiles are workbook-only. A rent that rises by a percentage
or with the CPI has the optional rise columns (涨租方式 escalation, 涨幅 rise, 下限 floor,
调整周期 every_months, 滞后 lag_months; percentages as ``5`` or ``5%``). Headers are
bilingual and found in any order (:mod:`cloud.apportion.workbook_cells` reads the cells,
within bounds). Money is yuan in the file (at most two decimals) and integer cents in the
records; dates ``YYYY-MM-DD``; a lease's end date is exclusive, as everywhere in leasing.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from openpyxl.utils import get_column_letter

from cloud.apportion.exports import csv_untext
from cloud.apportion.site import SiteFileError
from cloud.apportion.workbook_cells import (
    MAX_TEXT,
    Row,
    decimal_text,
    sheet_rows,
    shown,
    workbook_from_bytes,
)
from cloud.leases.ledger_cells import YUAN_TEXT, Cells, Issue
from cloud.leases.ledger_columns import (
    ANCHORS,
    CHANNELS,
    CSV_COLUMNS,
    CYCLES,
    ESCALATIONS,
    KINDS,
    LABELS,
    LEASE_COLUMNS,
    LEASES_SHEET,
    MAX_LEDGER_BYTES,
    MAX_LEDGER_ROWS,
    SHEETS,
    STATUSES,
    STEPS_SHEET,
    TENANTS_SHEET,
    UNITS_SHEET,
)
from cloud.leases.models import PROPERTY_TYPES
from cloud.wording import LANGUAGES


@dataclass
class TenantRec:
    id: str
    name: str
    channel: str
    address: str
    id_number: str | None
    #: the language of the tenant's notices; None (a blank cell): Chinese if new, else kept
    language: str | None = None
    at: Cells | None = field(default=None, compare=False, repr=False)


@dataclass
class UnitRec:
    unit: str
    unit_type: str
    property_type: str
    rentable: bool
    asking_cents: int
    at: Cells | None = field(default=None, compare=False, repr=False)


@dataclass
class LeaseRec:
    """One lease as the ledger holds it (amounts in cents; ``steps``: (from, cents) of a
    stepped rent, else ``rent_cents``; the deposit as months or cents, one of them).

    A rent that rises has ``escalation`` ``percent`` (by ``rise`` every ``every_months``)
    or ``cpi`` (with the CPI, clamped to [``floor``, ``rise``], every ``every_months``,
    ``lag_months`` behind); rates as Decimals (0.05 = 5 %), None where a cell was blank
    (the terms' default) or the rent does not rise."""

    id: str
    tenant: str
    unit: str
    manager: str
    kind: str
    start_on: date
    end_on: date
    rent_cents: int | None
    steps: tuple[tuple[date, int], ...]
    free_months: int
    free_days: int
    free_anchor: str
    deposit_months: Decimal | None
    deposit_cents: int | None
    cycle: int
    due_days: int
    parent: str | None
    signed_on: date | None
    handover_on: date | None
    status: str
    escalation: str | None = None
    rise: Decimal | None = None
    floor: Decimal | None = None
    every_months: int | None = None
    lag_months: int | None = None
    at: Cells | None = field(default=None, compare=False, repr=False)


@dataclass
class Ledger:
    """What a ledger file holds, or the issues found reading it."""

    tenants: list[TenantRec] = field(default_factory=list)
    units: list[UnitRec] = field(default_factory=list)
    leases: list[LeaseRec] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)


# ---------------------------------------------------------------------------- reading


def read_ledger(data: bytes, filename: str) -> Ledger:
    """The ledger in ``data`` (a .xlsx workbook or a .csv file, by ``filename``)."""
    if len(data) > MAX_LEDGER_BYTES:
        return Ledger(
            issues=[Issue("file", None, None, f"larger than {MAX_LEDGER_BYTES // 2**20} MiB")]
        )
    suffix = filename.lower().rsplit(".", 1)[-1] if "." in filename else ""
    if suffix == "xlsx":
        return _read_workbook(data, filename)
    if suffix == "csv":
        return _read_csv(data)
    return Ledger(
        issues=[Issue("file", None, None, f"expected a .xlsx or .csv file, got {shown(filename)}")]
    )


def _issues(raw: Iterable[Any]) -> list[Issue]:
    return [r if isinstance(r, Issue) else Issue("file", None, None, str(r)) for r in raw]


def _read_workbook(data: bytes, source: str) -> Ledger:
    try:
        wb = workbook_from_bytes(data, source)
    except SiteFileError as exc:
        return Ledger(issues=[Issue("file", None, None, e) for e in exc.errors])
    raw: list[Any] = []
    try:
        rows = {
            sheet: list(
                sheet_rows(wb, sheet, columns, raw, max_rows=MAX_LEDGER_ROWS, row_type=Cells)
            )
            for sheet, columns in SHEETS
        }
    finally:
        wb.close()
    out = Ledger()
    out.tenants = [t for t in map(_tenant, rows[TENANTS_SHEET]) if t]
    out.units = [u for u in map(_unit, rows[UNITS_SHEET]) if u]
    steps = _steps(rows[STEPS_SHEET])
    out.leases = [x for x in (_lease(r, steps) for r in rows[LEASES_SHEET]) if x]
    for lease_id, (row, _) in steps.items():
        if lease_id not in {x.id for x in out.leases}:
            row.fail(
                "lease",
                f"expected a lease of the {LEASES_SHEET} sheet, got {lease_id!r}",
                "step_lease",
                sheet=LEASES_SHEET,
                value=lease_id,
            )
    out.issues = _issues(raw)
    return out


def _read_csv(data: bytes) -> Ledger:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Ledger(issues=[Issue("file", None, None, f"not UTF-8 text (byte {exc.start})")])
    reader = csv.reader(io.StringIO(text, newline=""))
    raw: list[Any] = []
    header = next(reader, [])
    index: dict[str, int] = {}
    for i, name in enumerate(header[:64]):
        folded = " ".join(name.split()).casefold()
        if not folded:
            continue
        found = [c for c in CSV_COLUMNS if folded in c.names()]
        if not found or found[0].key in index:
            what = "unknown" if not found else "repeated"
            raw.append(Issue(LEASES_SHEET, 1, get_column_letter(i + 1), f"{what} column {name!r}"))
        else:
            index[found[0].key] = i
    required = [c for c in LEASE_COLUMNS if c.key not in index and not c.optional]
    if required:
        names = ", ".join(f"{c.zh}/{c.key}" for c in required)
        raw.append(Issue(LEASES_SHEET, 1, None, f"missing column(s) {names}"))
    if raw:
        return Ledger(issues=_issues(raw))
    letters = {k: get_column_letter(i + 1) for k, i in index.items()}
    out = Ledger()
    tenants: dict[str, TenantRec] = {}
    try:
        for line, values in enumerate(reader, start=2):
            if line > MAX_LEDGER_ROWS + 1:
                raw.append(Issue(LEASES_SHEET, None, None, f"more than {MAX_LEDGER_ROWS} rows"))
                break
            cells: dict[str, Any] = {  # the export's quote before formula text dropped
                k: csv_untext(values[i]) if i < len(values) else None for k, i in index.items()
            }
            if not any((v or "").strip() for v in cells.values()):
                continue
            row = Cells(LEASES_SHEET, line, cells, letters, raw)
            for key, value in cells.items():
                if isinstance(value, str) and len(value) > MAX_TEXT:
                    row.fail(key, f"expected at most {MAX_TEXT} characters", "long", most=MAX_TEXT)
                    cells[key] = None
            lease = _lease(row, {}, csv_steps=True)
            if lease is None:
                continue
            out.leases.append(lease)
            if row.text("tenant_name") and lease.tenant not in tenants:
                tenant = _tenant(row, prefix="tenant_", ident=lease.tenant)
                if tenant:
                    tenants[lease.tenant] = tenant
    except csv.Error as exc:
        raw.append(Issue(LEASES_SHEET, None, None, f"not a readable CSV file: {exc}"))
    out.tenants = list(tenants.values())
    out.issues = _issues(raw)
    return out


def _tenant(row: Row, prefix: str = "", ident: str | None = None) -> TenantRec | None:
    assert isinstance(row, Cells)
    before = len(row.errors)
    tenant_id = ident or row.ident("id")
    name = row.text(prefix + "name")
    if not name:
        row.fail(prefix + "name", "expected the tenant's name, got a blank cell", "blank_name")
    channel = row.choice(prefix + "channel", CHANNELS, "email")
    address = row.text(prefix + "address") or ""
    id_number = row.text(prefix + "id_number")
    if id_number is not None and len(id_number) > 32:
        row.fail(prefix + "id_number", "expected at most 32 characters", "long", most=32)
    language = row.choice(prefix + "language", LANGUAGES, None)
    if len(row.errors) > before or not tenant_id or not name:
        return None
    return TenantRec(tenant_id, name, channel or "email", address, id_number, language, at=row)


def _unit(row: Row) -> UnitRec | None:
    assert isinstance(row, Cells)
    before = len(row.errors)
    unit = row.ident("unit")
    unit_type = row.text("unit_type")
    if not unit_type or len(unit_type) > 32:
        row.fail("unit_type", "expected a unit type of 1–32 characters", "unit_type")
    prop = row.choice("property_type", PROPERTY_TYPES, "residential")
    rentable = row.yes_no("rentable") if row.cells.get("rentable") not in (None, "") else True
    asking = row.yuan("asking") or 0
    if len(row.errors) > before or not unit or not unit_type:
        return None
    return UnitRec(unit, unit_type, prop or "residential", rentable, asking, at=row)


def _steps(rows: list[Row]) -> dict[str, tuple[Cells, list[tuple[date, int]]]]:
    out: dict[str, tuple[Cells, list[tuple[date, int]]]] = {}
    for row in rows:
        assert isinstance(row, Cells)
        lease = row.ident("lease")
        day = row.date_("from", required=True)
        cents = row.yuan("rent", required=True)
        if lease and day and cents is not None:
            out.setdefault(lease, (row, []))[1].append((day, cents))
    return out


def _csv_steps(row: Cells) -> list[tuple[date, int]]:
    text = row.text("steps")
    out: list[tuple[date, int]] = []
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        day, sep, amount = part.strip().partition("=")
        try:
            when = date.fromisoformat(day.strip())
        except ValueError:
            when = None
        if not sep or when is None or not YUAN_TEXT.match(amount.strip()):
            row.fail(
                "steps",
                f"expected YYYY-MM-DD=yuan; …, got {shown(part.strip())}",
                "bad_steps",
                value=shown(part.strip()),
            )
            return []
        out.append((when, int(Decimal(amount.strip()) * 100)))
    return out


def _lease(
    row: Row, steps: dict[str, tuple[Cells, list[tuple[date, int]]]], csv_steps: bool = False
) -> LeaseRec | None:
    assert isinstance(row, Cells)
    before = len(row.errors)
    lease_id = row.ident("id")
    tenant, unit, manager = row.ident("tenant"), row.ident("unit"), row.ident("manager")
    kind = row.choice("kind", KINDS, "standard")
    start, end = row.date_("start_on", True), row.date_("end_on", True)
    if start and end and end <= start:
        row.fail(
            "end_on",
            f"expected a day after the start {start}, got {end}",
            "end_before_start",
            start=start,
            end=end,
        )
    rent = row.yuan("rent")
    stepped = _csv_steps(row) if csv_steps else list(steps.get(lease_id or "", (row, []))[1])
    if rent is None and not stepped and "rent" not in row.failed:
        row.fail(
            "rent",
            f"expected the monthly rent in yuan (or rows on {STEPS_SHEET})",
            "no_rent",
            sheet=STEPS_SHEET,
        )
    if rent is not None and stepped:
        row.fail(
            "rent",
            f"expected a blank cell: the rent is stepped on {STEPS_SHEET}",
            "rent_and_steps",
            sheet=STEPS_SHEET,
        )
    if rent == 0:
        row.fail("rent", "expected a rent above 0.00", "zero_rent")
    stepped.sort()
    if stepped and start and stepped[0][0] != start:
        where = "steps" if csv_steps else "rent"
        row.fail(
            where,
            f"expected the first rent step on the start {start}, got {stepped[0][0]}",
            "first_step",
            start=start,
            value=stepped[0][0],
        )
    rises = _rise(row, lease_id, stepped, steps, csv_steps)
    free_months = row.whole_number("free_months", 0, 24) or 0
    free_days = row.whole_number("free_days", 0, 366) or 0
    anchor = row.choice("free_anchor", ANCHORS, "start")
    months = row.number("deposit_months")
    deposit = row.yuan("deposit")
    if months is not None and not Decimal(0) <= months <= Decimal(12):
        row.fail(
            "deposit_months",
            f"expected 0–12 months, got {shown(str(months))}",
            "deposit_months",
            value=shown(str(months)),
        )
    if months is not None and deposit is not None:
        row.fail(
            "deposit", "expected a blank cell: the deposit is given in months", "deposit_twice"
        )
    cycle = row.choice("cycle", CYCLES, "1")
    due = row.whole_number("due_days", 0, 60)
    parent = row.ident("parent", required=False)
    signed, handover = row.date_("signed_on"), row.date_("handover_on")
    status = row.choice("status", STATUSES, "draft")
    if status in ("signed", "active") and signed is None and "signed_on" not in row.failed:
        row.fail(
            "signed_on",
            f"expected the signing day of a {status} lease, got a blank cell",
            "no_signing_day",
            status=status,
        )
    if len(row.errors) > before or not (lease_id and tenant and unit and manager and start and end):
        return None
    return LeaseRec(
        id=lease_id,
        tenant=tenant,
        unit=unit,
        manager=manager,
        kind=kind or "standard",
        start_on=start,
        end_on=end,
        rent_cents=rent,
        steps=tuple(stepped),
        free_months=free_months,
        free_days=free_days,
        free_anchor=anchor or "start",
        deposit_months=months if months is not None or deposit is not None else Decimal(2),
        deposit_cents=deposit if months is None else None,
        cycle=int(cycle or "1"),
        due_days=10 if due is None else due,
        parent=parent,
        signed_on=signed,
        handover_on=handover,
        status=status or "draft",
        **rises,
        at=row,
    )


_RISE_KEYS = ("rise", "floor", "every_months", "lag_months")


def _rise(
    row: Cells,
    lease_id: str | None,
    stepped: list[tuple[date, int]],
    steps: dict[str, tuple[Cells, list[tuple[date, int]]]],
    csv_steps: bool,
) -> dict[str, Any]:
    """How the row's rent rises (the LeaseRec fields), every contradicting cell named."""
    escalation = row.choice("escalation", ESCALATIONS, "fixed")
    rise, floor = row.percent("rise"), row.percent("floor")
    every = row.whole_number("every_months", 1, 60)
    lag = row.whole_number("lag_months", 0, 12)
    if "escalation" in row.failed:
        return {}
    if escalation not in ("percent", "cpi"):
        label = LABELS[LEASES_SHEET]["escalation"]
        for key in _RISE_KEYS:
            if row.filled(key):
                row.fail(
                    key,
                    f"expected a blank cell: the rent rises only with {label} percent or cpi",
                    "no_escalation",
                    column=label,
                )
        return {}
    if stepped:
        row.fail(
            "escalation",
            f"expected a blank cell: the rent is stepped on {STEPS_SHEET}, and a stepped "
            f"rent does not also rise by {escalation}",
            "escalation_and_steps",
            sheet=STEPS_SHEET,
            escalation=escalation,
        )
        if csv_steps:
            row.fail(
                "steps",
                f"expected a blank cell: the rent rises by {escalation}",
                "steps_and_escalation",
                escalation=escalation,
            )
        elif lease_id in steps:
            steps[lease_id][0].fail(
                "lease",
                f"expected no rent steps: lease {lease_id!r} rises by {escalation} on "
                f"{LEASES_SHEET}",
                "steps_of_rising",
                value=lease_id,
                escalation=escalation,
                sheet=LEASES_SHEET,
            )
    if rise is None and "rise" not in row.failed:
        if escalation == "percent":
            row.fail("rise", "expected the rise in percent, got a blank cell", "no_rise")
        else:
            row.fail(
                "rise", "expected the cap of the CPI rise in percent, got a blank cell", "no_cap"
            )
    if escalation == "percent":
        for key in ("floor", "lag_months"):
            if row.filled(key):
                row.fail(key, "expected a blank cell: only a CPI-linked rent has it", "cpi_only")
    elif floor is not None and rise is not None and floor > rise:
        row.fail(
            "floor",
            f"expected a floor at most the cap {decimal_text(rise * 100)}%, got "
            f"{decimal_text(floor * 100)}%",
            "floor_above_cap",
            cap=f"{decimal_text(rise * 100)}%",
            value=f"{decimal_text(floor * 100)}%",
        )
    return {
        "escalation": escalation,
        "rise": rise,
        "floor": floor if escalation == "cpi" else None,
        "every_months": every,
        "lag_months": lag if escalation == "cpi" else None,
    }
