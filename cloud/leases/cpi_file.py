"""Reading CPI figures: one month's figure typed by an operator, or a CSV of them.

A CSV is UTF-8 (with or without a byte-order mark) with a header row naming three columns
(case and spaces ignored): ``month`` (月份), ``basis`` (口径) and ``value`` (数值, 指数). A
month is ``YYYY-MM`` from :data:`FIRST_MONTH` to the current local month; a basis ``yoy``
(also ``上年同月=100``, ``同比``) or ``level`` (also ``定基``); a value a positive decimal
with at most four decimals, a year-on-year figure within [:data:`YOY_MIN`, :data:`YOY_MAX`],
a level within [:data:`LEVEL_MIN`, :data:`LEVEL_MAX`]. Decision 0042.

Everything an outsider controls is bounded: :data:`MAX_BYTES` of file, :data:`MAX_ROWS`
data rows, :data:`MAX_FIELD` characters a cell. Every bad row is named by its row number
(1 = the header) and column, and a month given twice is refused; the caller stores nothing
when there is any problem.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from cloud.leases.errors import CpiError
from cloud.leases.schedule import CPI_LEVEL, CPI_YOY

#: The largest CPI file [bytes] (under the web guard's 64 KiB a request, with the form).
MAX_BYTES = 48 * 1024
#: The most data rows a CPI file may have (50 years of months).
MAX_ROWS = 600
#: The longest cell [characters].
MAX_FIELD = 32
#: The most problems reported for one file (the rest are counted).
MAX_PROBLEMS = 50
#: The earliest month taken.
FIRST_MONTH = date(1985, 1, 1)
#: Bounds of a year-on-year figure (上年同月=100): −50 % … +100 %.
YOY_MIN, YOY_MAX = Decimal(50), Decimal(200)
#: Bounds of a fixed-base level (定基).
LEVEL_MIN, LEVEL_MAX = Decimal(1), Decimal(99_999)

_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
_VALUE = re.compile(r"^[0-9]{1,5}(\.[0-9]{1,4})?$")
_BASES = {
    "yoy": CPI_YOY,
    "上年同月=100": CPI_YOY,
    "同比": CPI_YOY,
    "level": CPI_LEVEL,
    "定基": CPI_LEVEL,
}
_COLUMNS = {
    "month": "month",
    "月份": "month",
    "basis": "basis",
    "口径": "basis",
    "value": "value",
    "数值": "value",
    "指数": "value",
}


@dataclass(frozen=True)
class CpiEntry:
    """One month's figure as read: the month (its first day), basis and value; ``row`` the
    file's row (0: typed, not from a file)."""

    month: date
    basis: str
    value: Decimal
    row: int = 0


def parse_month(text: str, today: date) -> date:
    """``YYYY-MM`` as the month's first day; ValueError naming what was expected."""
    found = _MONTH.match(text.strip())
    if not found or not 1 <= int(found[2]) <= 12:
        raise ValueError(f"month {text!r}: expected YYYY-MM")
    month = date(max(int(found[1]), 1), int(found[2]), 1)  # year 0: out of bounds below
    if not FIRST_MONTH <= month <= today.replace(day=1):
        raise ValueError(
            f"month {text!r}: expected {FIRST_MONTH:%Y-%m} to {today:%Y-%m} "
            "(a CPI is published after its month)"
        )
    return month


def parse_basis(text: str) -> str:
    """``yoy`` or ``level`` (or their Chinese names); ValueError otherwise."""
    basis = _BASES.get(text.strip().lower().replace(" ", ""))
    if basis is None:
        raise ValueError(f"basis {text!r}: expected yoy (上年同月=100) or level (定基)")
    return basis


def parse_value(text: str, basis: str) -> Decimal:
    """A figure of ``basis``: a positive decimal, at most four decimals, within the bounds."""
    cleaned = text.strip()
    if not _VALUE.match(cleaned):
        raise ValueError(
            f"value {text!r}: expected a positive decimal with at most 4 decimals, e.g. 100.4"
        )
    value = Decimal(cleaned)
    low, high = (YOY_MIN, YOY_MAX) if basis == CPI_YOY else (LEVEL_MIN, LEVEL_MAX)
    if not low <= value <= high:
        raise ValueError(f"value {text!r}: a {basis} figure is expected within {low}–{high}")
    return value


def parse_entry(month: str, basis: str, value: str, today: date) -> CpiEntry:
    """One typed figure; CpiError naming the field at fault."""
    try:
        kind = parse_basis(basis)
        return CpiEntry(parse_month(month, today), kind, parse_value(value, kind))
    except ValueError as exc:
        raise CpiError(str(exc)) from None


def read_cpi_csv(raw: bytes, today: date) -> list[CpiEntry]:
    """The figures of a CPI CSV, in file order; CpiError with every problem otherwise."""
    if len(raw) > MAX_BYTES:
        raise CpiError(f"the file has {len(raw)} bytes, expected at most {MAX_BYTES}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CpiError("the file is not UTF-8 text (expected a CSV saved as UTF-8)") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or not any(c.strip() for c in rows[0]):
        raise CpiError("the file is empty: expected a header row month,basis,value")
    header = [_COLUMNS.get(c.strip().lower().replace(" ", ""), "") for c in rows[0]]
    missing = [c for c in ("month", "basis", "value") if c not in header]
    if missing:
        raise CpiError(f"row 1: the header lacks {', '.join(missing)} (expected month,basis,value)")
    where = {name: header.index(name) for name in ("month", "basis", "value")}
    data = [(i, r) for i, r in enumerate(rows[1:], start=2) if any(c.strip() for c in r)]
    if len(data) > MAX_ROWS:
        raise CpiError(f"the file has {len(data)} rows, expected at most {MAX_ROWS}")
    problems: list[str] = []
    entries: list[CpiEntry] = []
    seen: dict[date, int] = {}
    for number, cells in data:
        cell = {k: (cells[i] if i < len(cells) else "") for k, i in where.items()}
        too_long = [k for k, v in cell.items() if len(v) > MAX_FIELD]
        if too_long:
            problems.append(f"row {number}, column {too_long[0]}: more than {MAX_FIELD} characters")
            continue
        column = "month"
        try:
            month = parse_month(cell["month"], today)
            column = "basis"
            basis = parse_basis(cell["basis"])
            column = "value"
            value = parse_value(cell["value"], basis)
        except ValueError as exc:
            problems.append(f"row {number}, column {column}: {exc}")
            continue
        if month in seen:
            problems.append(
                f"row {number}, column month: {month:%Y-%m} is given twice (also row {seen[month]})"
            )
            continue
        seen[month] = number
        entries.append(CpiEntry(month, basis, value, number))
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"… and {len(problems) - MAX_PROBLEMS} more problems")
        raise CpiError(f"{len(problems)} rows refused, nothing stored", shown)
    if not entries:
        raise CpiError("the file has no rows under its header")
    return entries
