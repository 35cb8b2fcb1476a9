"""Reading an operator's workbook cell by cell, bounded, every bad cell named.

The site workbook (:mod:`cloud.apportion.site_workbook`) comes from outside, so it is read
within bounds: the file at most :data:`MAX_WORKBOOK_BYTES`, a sheet at most :data:`MAX_ROWS`
rows and :data:`MAX_COLUMNS` columns, a text cell at most :data:`MAX_TEXT` characters. A
sheet's columns are found by their headers (Chinese, English or both; any order). Cell values
become exact values: a number cell's value goes to Decimal through its text (a float cell
0.1 is Decimal('0.1'), never a binary fraction), a date cell or ``YYYY-MM-DD`` text to a
date. A bad cell is named as ``sheet!cell (column)`` and reading goes on, so that one pass
lists them all.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.workbook.workbook import Workbook

from cloud.apportion.case.loading import MAX_CASE_BYTES
from cloud.apportion.site import SiteFileError

#: Largest workbook read [bytes]: the same bound as a case or site file.
MAX_WORKBOOK_BYTES = MAX_CASE_BYTES
#: Most rows read from one sheet (blank rows count).
MAX_ROWS = 200_000
#: Most columns looked at on one sheet.
MAX_COLUMNS = 64
#: Longest text accepted in one cell [characters].
MAX_TEXT = 200
#: Longest quotation of a bad value in an error message [characters].
_MAX_SHOWN = 60

SITE_SHEET = "站点 Site"
UNITS_SHEET = "单元 Units"
METERS_SHEET = "表计 Meters"
NOTES_SHEET = "说明 Notes"
NODE_KINDS = ("unit", "common", "branch", "main", "landlord")

_YES = {"是", "y", "yes", "true", "1", "√", "✓"}
_NO = {"否", "n", "no", "false", "0", ""}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Column:
    """A column of a sheet: its key, bilingual header, kind of value, width and notes."""

    key: str
    zh: str
    en: str
    kind: str  # text, number, date, yesno or a list's name
    width: float
    note_zh: str
    note_en: str
    #: a sheet may leave the column out (a workbook from before it was added)
    optional: bool = False

    @property
    def header(self) -> str:
        """The header cell's text: Chinese first, English on the second line."""
        return f"{self.zh}\n{self.en}"

    def names(self) -> set[str]:
        """The header texts this column is recognised by (case and spaces ignored)."""
        return {_fold(n) for n in (self.key, self.zh, self.en, self.header, f"{self.zh} {self.en}")}


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def shown(value: Any) -> str:
    """A bad value as quoted in an error message (bounded)."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…'"


def steps_text(steps: Iterable[Mapping[str, Any]]) -> str:
    """Dated multiplier steps as the read-only text the Meters sheet shows."""
    return "; ".join(f"{s['from']}: {decimal_text(s['value'])}" for s in steps)


def decimal_text(value: Any) -> str:
    """A number as plain decimal text (no exponent, no trailing zeros)."""
    text = format(Decimal(str(value)).normalize(), "f")
    return "0" if text in ("-0", "") else text


@dataclass
class Row:
    """One data row of a sheet: its cells by column key, and the errors found in it."""

    sheet: str
    line: int
    cells: dict[str, Any]
    letters: dict[str, str]
    errors: list[str]
    failed: set[str] = field(default_factory=set)

    def ref(self, key: str) -> str:
        """``sheet!E7 (area)``: where a column's cell of this row is."""
        return f"{self.sheet}!{self.letters[key]}{self.line} ({key})"

    def fail(self, key: str, message: str, code: str = "", **params: Any) -> None:
        """Name the cell of column ``key`` as bad (once per cell). ``message`` is English;
        ``code`` and ``params`` say the same for a page to word in its reader's language
        (a subclass keeping them; here the message is enough)."""
        if key not in self.failed:
            self.failed.add(key)
            self.errors.append(f"{self.ref(key)}: {message}")

    def text(self, key: str) -> str | None:
        """The cell as text (a whole number cell gives its digits); blank is None."""
        value = self.cells.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, str):
            return value.strip()
        if isinstance(value, bool | datetime | date):
            self.fail(key, f"{shown(value)} is not text", "not_text", value=shown(value))
            return None
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def number(self, key: str) -> Decimal | None:
        """The cell as an exact Decimal (from its value's text); blank is None."""
        value = self.cells.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            self.fail(key, f"{shown(value)} is not a number", "not_number", value=shown(value))
            return None
        text = value.strip().replace(",", "") if isinstance(value, str) else str(value)
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            self.fail(key, f"{shown(value)} is not a number", "not_number", value=shown(value))
            return None
        return number

    def day(self, key: str) -> date | None:
        """The cell as a date (a date cell, or text YYYY-MM-DD); blank is None."""
        value = self.cells.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, datetime):
            if value.time() == datetime.min.time():
                return value.date()
            self.fail(
                key,
                f"{value.isoformat(sep=' ')} has a time of day; give the date only",
                "time_of_day",
                value=value.isoformat(sep=" "),
            )
            return None
        if isinstance(value, date):
            return value
        if isinstance(value, str) and _DAY.match(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        self.fail(key, f"{shown(value)} is not a date (YYYY-MM-DD)", "not_date", value=shown(value))
        return None

    def yes_no(self, key: str) -> bool:
        """The cell as 是/否 (also yes/no, true/false, 1/0); blank is 否."""
        value = self.cells.get(key)
        if isinstance(value, bool):
            return value
        text = _fold(str(value)) if value is not None else ""
        if text in _YES:
            return True
        if text not in _NO:
            self.fail(
                key, f"{shown(value)} is not 是 or 否 (yes/no)", "not_yes_no", value=shown(value)
            )
        return False


def open_workbook(path: Path, source: str) -> Workbook:
    """The workbook at ``path``, read-only with cached values, after checking its size."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_WORKBOOK_BYTES + 1)
    except OSError as exc:
        raise SiteFileError(source, [f"cannot read the workbook: {exc.strerror or exc}"]) from None
    if len(data) > MAX_WORKBOOK_BYTES:
        raise SiteFileError(
            source, [f"the workbook is larger than {MAX_WORKBOOK_BYTES // (1024 * 1024)} MiB"]
        )
    return workbook_from_bytes(data, source)


def workbook_from_bytes(data: bytes, source: str) -> Workbook:
    """The workbook in ``data`` (bounded by the caller), read-only with cached values."""
    try:
        return load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError) as exc:
        raise SiteFileError(
            source, [f"not an Excel workbook (.xlsx) that can be read: {shown(str(exc))}"]
        ) from None


def sheet_rows(
    wb: Workbook,
    sheet: str,
    columns: Sequence[Column],
    errors: list[Any],
    *,
    max_rows: int = MAX_ROWS,
    row_type: type[Row] = Row,
) -> Iterator[Row]:
    """The sheet's non-blank data rows (as ``row_type``), its columns found by header; a
    missing sheet, an unknown, repeated or missing header, more than ``max_rows`` rows or
    too long a text are errors."""
    if sheet not in wb.sheetnames:
        errors.append(f"{sheet}: the sheet is missing (sheets: {', '.join(wb.sheetnames)})")
        return
    rows = wb[sheet].iter_rows(values_only=True, max_col=MAX_COLUMNS)
    header = next(rows, None) or ()
    letters: dict[str, str] = {}
    index: dict[str, int] = {}
    wanted = ", ".join(c.zh + " " + c.en for c in columns)
    bad_header = False
    for i, value in enumerate(header):
        if value is None or not str(value).strip():
            continue
        letter = get_column_letter(i + 1)
        name = _fold(str(value))[:MAX_TEXT]
        found = [c for c in columns if name in c.names()]
        if not found:
            errors.append(
                f"{sheet}!{letter}1: unknown column {shown(str(value))}; expected {wanted}"
            )
            bad_header = True
        elif found[0].key in index:
            errors.append(f"{sheet}!{letter}1: column {found[0].key!r} appears twice")
            bad_header = True
        else:
            index[found[0].key] = i
            letters[found[0].key] = letter
    missing = [c.zh + " " + c.en for c in columns if c.key not in index and not c.optional]
    if missing:
        errors.append(f"{sheet}: missing column(s) {', '.join(missing)} in row 1")
    if bad_header or missing:
        return
    for line, values in enumerate(rows, start=2):
        if line > max_rows + 1:
            errors.append(
                f"{sheet}: more than {max_rows} rows; nothing past row {max_rows + 1} read"
            )
            return
        cells = {k: values[i] if i < len(values) else None for k, i in index.items()}
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in cells.values()):
            continue
        row = row_type(sheet, line, cells, letters, errors)
        for key, value in cells.items():
            if isinstance(value, str) and len(value) > MAX_TEXT:
                row.fail(key, f"text longer than {MAX_TEXT} characters")
                cells[key] = None
        yield row
