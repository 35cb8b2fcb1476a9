"""Reading a bank statement exported as CSV: the columns banks use, in Chinese or English.

A statement is UTF-8 (with or without a byte-order mark) or GB18030 (what Chinese banks
export; detected when the text is not UTF-8). Lines before the header (the bank's title, the
account, the period) are skipped: the header is the first row that names a date column and
an amount column. Recognised columns (case, spaces and a unit such as ``(元)`` ignored):

* date: 交易日期, 记账日期, 入账日期, 日期, 交易时间, date, transaction date, booking date,
  value date
* amount: a signed 金额/交易金额/发生额/amount, or 贷方金额/收入金额/收入/贷方发生额/credit
  (money in) with 借方金额/支出金额/支出/借方发生额/debit (money out), or an amount with
  借贷标志/收支/direction (贷/收/入/credit/cr money in; 借/支/出/debit/dr money out)
* payer: 付款人, 对方户名, 付款人名称, 对方名称, 对方账户名称, 对方账户名, payer, payer name,
  counterparty
* payer account: 付款账号, 对方账号, 付款人账号, 对方账户, payer account, counterparty account
* reference: 摘要, 附言, 备注, 用途, reference, memo, remark, description, narrative
  (several of them are joined with a space)
* serial: 流水号, 交易流水号, 凭证号, 交易序号, serial, transaction id, bank reference

Amounts are yuan with at most two decimals, with or without thousands separators
(``8,000.00``), ``¥`` or ``CNY``. Days are ``YYYY-MM-DD``, ``YYYY/MM/DD``, ``YYYYMMDD`` or
``YYYY年MM月DD日``, a time after them ignored. A totals row (合计, 总计, total) ends nothing
and is skipped. Money out (debit lines) is counted and not kept.

Everything an outsider controls is bounded: :data:`MAX_BYTES` of file, :data:`MAX_ROWS`
lines, :data:`MAX_FIELD` characters a cell. A malformed row is reported with its row number
(1 = the file's first line) and column; :func:`read_statement` returns the good lines and
every problem, so that a dry run can show both and an import can refuse the whole file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

#: The largest statement file [bytes].
MAX_BYTES = 2 * 1024 * 1024
#: The most rows a statement may have (header and preamble included).
MAX_ROWS = 5000
#: The longest cell [characters].
MAX_FIELD = 200
#: The most problems reported for one file (the rest are counted).
MAX_PROBLEMS = 50
#: How many rows at the top may precede the header.
HEADER_SEARCH = 30

ALIASES: dict[str, tuple[str, ...]] = {
    "date": (
        "交易日期",
        "记账日期",
        "入账日期",
        "日期",
        "交易时间",
        "date",
        "transactiondate",
        "bookingdate",
        "valuedate",
    ),
    "credit": ("贷方金额", "收入金额", "收入", "贷方发生额", "credit", "creditamount"),
    "debit": ("借方金额", "支出金额", "支出", "借方发生额", "debit", "debitamount"),
    "amount": ("金额", "交易金额", "发生额", "amount"),
    "direction": ("借贷标志", "收支", "借贷", "收支标志", "direction", "dr/cr"),
    "payer": (
        "付款人",
        "对方户名",
        "付款人名称",
        "对方名称",
        "对方账户名称",
        "对方账户名",
        "payer",
        "payername",
        "counterparty",
    ),
    "payer_account": (
        "付款账号",
        "对方账号",
        "付款人账号",
        "对方账户",
        "payeraccount",
        "counterpartyaccount",
    ),
    "reference": (
        "摘要",
        "附言",
        "备注",
        "用途",
        "reference",
        "memo",
        "remark",
        "description",
        "narrative",
    ),
    "serial": (
        "流水号",
        "交易流水号",
        "凭证号",
        "交易序号",
        "serial",
        "transactionid",
        "bankreference",
    ),
}
_COLUMN_OF = {alias: column for column, names in ALIASES.items() for alias in names}
_IN = {"贷", "收", "入", "credit", "cr", "c", "+"}
_OUT = {"借", "支", "出", "debit", "dr", "d", "-"}
_TOTALS = ("合计", "总计", "本页合计", "total")
_AMOUNT = re.compile(r"^([+-]?)([0-9]{1,3}(?:,[0-9]{3})+|[0-9]{1,10})(?:\.([0-9]{1,2}))?$")
_DAY = re.compile(r"^(\d{4})(?:[-/.年](\d{1,2})[-/.月](\d{1,2})日?|(\d{2})(\d{2}))(?:[ T].*)?$")


class StatementFileError(ValueError):
    """A file that is not a statement at all (too large, not text, no header)."""


@dataclass(frozen=True)
class StatementLine:
    """One credit line (money in): its row in the file, the bank's day, the amount [cents],
    the payer's name and account, the reference text and the bank's serial ('' when the
    statement has none); ``key`` is its natural key (see :func:`line_key`)."""

    row: int
    booked_on: date
    cents: int
    payer: str
    payer_account: str
    reference: str
    serial: str
    key: str


@dataclass
class Statement:
    """What a file holds: its SHA-256, the credit lines, the debit lines counted (number and
    cents), and the problems (``row N, column C: ...``)."""

    sha256: str
    lines: list[StatementLine] = field(default_factory=list)
    debits: int = 0
    debit_cents: int = 0
    problems: list[str] = field(default_factory=list)
    more_problems: int = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self.more_problems += 1


def decode(raw: bytes) -> str:
    """The text of a statement: UTF-8 (a byte-order mark dropped), else GB18030."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StatementFileError(
                f"the file starts as UTF-8 but byte {exc.start + 3} is not UTF-8"
            ) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise StatementFileError(
            f"expected CSV text in UTF-8 or GB18030; byte {exc.start} is neither"
        ) from None


def _norm_header(cell: str) -> str:
    text = re.sub(r"[(（][^)）]*[)）]", "", cell.strip().lower())
    return re.sub(r"[\s_:：*]", "", text)


def parse_cents(text: str) -> int:
    """Yuan as written on a statement (``8,000.00``, ``-120.5``, ``¥300``) → signed cents."""
    cleaned = re.sub(r"^(?:¥|￥|cny|rmb)\s*", "", text.strip().lower()).replace(" ", "")
    found = _AMOUNT.match(cleaned)
    if not found:
        raise ValueError(
            f"{text!r} is not an amount: expected yuan with at most two decimals "
            "(8000.00 or 8,000.00)"
        )
    sign, whole, frac = found.groups()
    cents = int(Decimal(whole.replace(",", "") + "." + (frac or "0")) * 100)
    return -cents if sign == "-" else cents


def parse_day(text: str) -> date:
    """A statement's day (``2026-03-05``, ``2026/3/5``, ``20260305``, ``2026年3月5日``)."""
    found = _DAY.match(text.strip())
    if found:
        year, m1, d1, m2, d2 = found.groups()
        try:
            return date(int(year), int(m1 or m2), int(d1 or d2))
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not a day: expected YYYY-MM-DD (or YYYY/MM/DD, YYYYMMDD)")


def line_key(serial: str, fields: tuple[str, ...], occurrence: int) -> str:
    """The natural key of a line: ``serial:<day>/<cents>/<serial>`` when the bank gives a
    serial (with the day and amount: two banks' serials may coincide, not on the same day
    for the same amount; a SHA-256 of it when longer than the column), else the SHA-256 of the
    line's day, amount, payer, account and reference with its occurrence among identical
    lines of the file (two equal transfers on one day are two lines)."""
    if serial:
        key = f"serial:{fields[0]}/{fields[1]}/{serial}"
        return key if len(key) <= 80 else f"serial:{hashlib.sha256(key.encode()).hexdigest()}"
    digest = hashlib.sha256("\x1f".join((*fields, str(occurrence))).encode()).hexdigest()
    return f"sha256:{digest}"


def _header(rows: list[list[str]]) -> tuple[int, dict[str, list[int]]] | None:
    for at, row in enumerate(rows[:HEADER_SEARCH]):
        columns: dict[str, list[int]] = {}
        for i, cell in enumerate(row):
            name = _COLUMN_OF.get(_norm_header(cell))
            if name is not None:
                columns.setdefault(name, []).append(i)
        if "date" in columns and ({"amount", "credit"} & columns.keys()):
            return at, columns
    return None


def read_statement(raw: bytes) -> Statement:
    """The credit lines of a CSV bank statement and the problems of its malformed rows.

    Raises :class:`StatementFileError` for a file that is too large, not text or without a
    recognisable header."""
    if len(raw) > MAX_BYTES:
        raise StatementFileError(
            f"the file has {len(raw)} bytes: expected at most {MAX_BYTES} (2 MiB)"
        )
    text = decode(raw)
    if "\x00" in text:
        raise StatementFileError("the file holds NUL characters: expected CSV text")
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO(text, newline="")):
            rows.append(row)
            if len(rows) > MAX_ROWS:
                raise StatementFileError(f"the file has more than {MAX_ROWS} rows")
    except csv.Error as exc:
        raise StatementFileError(f"row {len(rows) + 1}: not CSV ({exc})") from None
    found = _header(rows)
    if found is None:
        raise StatementFileError(
            "no header row: expected a row naming a date column (交易日期/记账日期/date) "
            "and an amount column (金额/贷方金额/收入金额/amount)"
        )
    at, columns = found
    header = rows[at]
    statement = Statement(hashlib.sha256(raw).hexdigest())
    seen: dict[tuple[str, ...], int] = {}

    def cell(row: list[str], name: str) -> str:
        parts = [row[i].strip() for i in columns.get(name, []) if i < len(row)]
        return " ".join(p for p in parts if p)

    for number, row in enumerate(rows[at + 1 :], start=at + 2):
        if not any(c.strip() for c in row):
            continue
        first = next(c.strip().lower() for c in row if c.strip())
        if first.startswith(_TOTALS):
            continue
        where = f"row {number}"
        long = next((i for i, c in enumerate(row) if len(c) > MAX_FIELD), None)
        if long is not None:
            name = header[long] if long < len(header) else f"#{long + 1}"
            statement.problem(
                f"{where}, column {name!r}: {len(row[long])} characters, expected at most "
                f"{MAX_FIELD}"
            )
            continue
        try:
            day = parse_day(cell(row, "date"))
        except ValueError as exc:
            statement.problem(f"{where}, column {header[columns['date'][0]]!r}: {exc}")
            continue
        try:
            cents = _signed_amount(row, columns, header, cell)
        except ValueError as exc:
            statement.problem(f"{where}, {exc}")
            continue
        if cents == 0:
            statement.problem(f"{where}: an amount of 0.00, expected money in or out")
            continue
        if cents < 0:
            statement.debits += 1
            statement.debit_cents += -cents
            continue
        payer, account = cell(row, "payer"), cell(row, "payer_account")
        reference, serial = cell(row, "reference")[:MAX_FIELD], cell(row, "serial")
        if len(serial) > 64 or len(account) > 64:
            statement.problem(f"{where}: a serial or payer account longer than 64 characters")
            continue
        fields = (day.isoformat(), str(cents), payer, account, reference)
        occurrence = seen.get(fields, 0)
        seen[fields] = occurrence + 1
        statement.lines.append(
            StatementLine(
                number,
                day,
                cents,
                payer,
                account,
                reference,
                serial,
                line_key(serial, fields, occurrence),
            )
        )
    return statement


def _signed_amount(row, columns, header, cell) -> int:  # type: ignore[no-untyped-def]
    """Cents of a row: + money in, - money out; ValueError naming the column."""
    if "credit" in columns:
        credit, debit = cell(row, "credit"), cell(row, "debit")
        if credit and debit:
            raise ValueError(
                f"columns {header[columns['credit'][0]]!r} and "
                f"{header[columns['debit'][0]]!r}: both hold an amount, expected one"
            )
        if credit:
            return _amount_in(credit, header[columns["credit"][0]])
        if debit:
            return -abs(_amount_in(debit, header[columns["debit"][0]]))
        raise ValueError(f"column {header[columns['credit'][0]]!r}: empty, expected an amount")
    name = header[columns["amount"][0]]
    cents = _amount_in(cell(row, "amount"), name)
    if "direction" in columns:
        way = cell(row, "direction").lower()
        if way in _IN:
            return abs(cents)
        if way in _OUT:
            return -abs(cents)
        raise ValueError(
            f"column {header[columns['direction'][0]]!r}: {way!r}, expected 贷/借 "
            "(收/支, credit/debit)"
        )
    return cents


def _amount_in(text: str, column: str) -> int:
    try:
        return parse_cents(text)
    except ValueError as exc:
        raise ValueError(f"column {column!r}: {exc}") from None
