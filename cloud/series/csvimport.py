"""Reading an operator's CSV file for an import, bounded, with every problem named by line.

Shared by the manual readings (:mod:`cloud.series.manual`) and the driver values
(:mod:`cloud.apportion.drivers`) imports. The discipline is the same for both: the whole file
is checked first, every problem is collected with its line and column, and when there is any
problem nothing at all is stored.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

#: largest file accepted, in bytes
MAX_FILE_BYTES = 16 * 1024 * 1024
#: most data rows accepted in one file
MAX_ROWS = 1_000_000
#: longest field accepted, in characters (a note; identifiers are shorter still)
MAX_FIELD_CHARS = 500
#: problems listed in full; the rest are counted
MAX_LISTED_PROBLEMS = 50
#: magnitude bound of any value (the case file's bound), exclusive
MAX_MAGNITUDE = Decimal(10) ** 15
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$")


class ImportRefused(Exception):
    """The file was refused; nothing was stored. ``problems`` are the first
    :data:`MAX_LISTED_PROBLEMS` one-line problems in file order, ``more`` counts the rest."""

    def __init__(self, source: str, problems: list[str], more: int = 0) -> None:
        self.source = source
        self.problems = problems
        self.more = more
        count = len(problems) + more
        super().__init__(
            f"{source}: refused, nothing stored: {count} problem{'s' if count != 1 else ''}"
            f" (first: {problems[0] if problems else '?'})"
        )


@dataclass
class Problems:
    """Problems found in a file, kept with their line numbers so they list in file order."""

    source: str
    found: list[tuple[int, str]] = field(default_factory=list)
    #: (line, id) of rows left out for another problem whose registry id (meter, site) must
    #: still be looked up, so that every problem of the file is listed at once
    left_out: list[tuple[int, str]] = field(default_factory=list)

    def add(self, line: int, message: str, column: str | None = None) -> None:
        where = f"line {line}" + (f", column {column}" if column else "")
        self.found.append((line, f"{where}: {message}"))

    def file(self, message: str) -> None:
        self.found.append((0, message))

    def __bool__(self) -> bool:
        return bool(self.found)

    def refuse(self) -> ImportRefused:
        ordered = [m for _, m in sorted(self.found, key=lambda f: f[0])]
        return ImportRefused(
            self.source,
            ordered[:MAX_LISTED_PROBLEMS],
            max(0, len(ordered) - MAX_LISTED_PROBLEMS),
        )


def read_bytes(path: Path) -> bytes:
    """The file's bytes, refused (ImportRefused) when missing or over :data:`MAX_FILE_BYTES`."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImportRefused(str(path), [f"cannot read the file: {exc.strerror or exc}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused(
            str(path), [f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; split it"]
        )
    return data


def read_table(
    data: bytes, source: str, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> tuple[list[tuple[int, dict[str, str]]], Problems]:
    """Rows of a UTF-8 CSV (a BOM is allowed) as (line number, {column: stripped text}).

    The header must name each of ``required`` once, ``optional`` at most once, and nothing
    else, in any order. Blank lines are skipped. Malformed rows (wrong field count, a field
    over :data:`MAX_FIELD_CHARS`) are reported in the returned Problems and left out.
    A file that cannot be read as a table at all raises ImportRefused.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportRefused(
            source,
            [f"byte {exc.start}: not UTF-8; save the sheet as 'CSV UTF-8' (GBK is not read)"],
        ) from None
    problems = Problems(source)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    known = (*required, *optional)
    expected = ",".join(required) + "".join(f"[,{c}]" for c in optional)
    try:
        header = next(reader, None)
        if header is None:
            raise ImportRefused(source, [f"empty file; expected a header {expected}"])
        names = [h.strip().lower() for h in header]
        unknown = [n for n in names if n not in known]
        twice = sorted({n for n in names if names.count(n) > 1})
        missing = [c for c in required if c not in names]
        if unknown or twice or missing:
            what = "; ".join(
                part
                for part in (
                    f"unknown column(s) {', '.join(map(repr, unknown))}" if unknown else "",
                    f"column(s) named twice {', '.join(twice)}" if twice else "",
                    f"missing column(s) {', '.join(missing)}" if missing else "",
                )
                if part
            )
            raise ImportRefused(source, [f"line 1 (header): {what}; expected {expected}"])
        rows: list[tuple[int, dict[str, str]]] = []
        end = reader.line_num
        for record in reader:
            # name a record by its first line: a quoted field may span several
            line, end = end + 1, reader.line_num
            if not record or all(not f.strip() for f in record):
                continue
            if len(rows) >= MAX_ROWS:
                raise ImportRefused(source, [f"more than {MAX_ROWS:,} rows; split the file"])
            if len(record) != len(names):
                problems.add(line, f"{len(record)} fields, expected {len(names)} ({expected})")
                continue
            long = [n for n, f in zip(names, record, strict=True) if len(f) > MAX_FIELD_CHARS]
            if long:
                problems.add(line, f"longer than {MAX_FIELD_CHARS} characters", long[0])
                continue
            rows.append((line, {n: f.strip() for n, f in zip(names, record, strict=True)}))
    except csv.Error as exc:
        raise ImportRefused(source, [f"line {reader.line_num}: not valid CSV: {exc}"]) from None
    return rows, problems


def parse_decimal(text: str) -> Decimal | str:
    """A finite decimal of magnitude under :data:`MAX_MAGNITUDE`, or the problem as text."""
    if not _DECIMAL.match(text):
        return f"{text!r} is not a finite decimal number (e.g. 1234.56)"
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        return f"{text!r} is not a decimal number (e.g. 1234.56)"
    if abs(value) >= MAX_MAGNITUDE:
        return f"{text!r} is out of range (magnitude must be under 1e15)"
    return value


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (a line break, a tab ...)."""
    return any(ord(c) < 32 or ord(c) == 127 for c in text)
