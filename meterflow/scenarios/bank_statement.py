"""Bank statements as banks export them, for tests and simulated years: a CSV with the
bank's title lines, a header in Chinese (or English) and one row per transaction.

:func:`write_bank_statement` writes money in (``cents`` > 0) in the credit column and money
out (``cents`` < 0) in the debit column, amounts with thousands separators (``8,000.00``),
in UTF-8 with a byte-order mark (what spreadsheet programs expect), UTF-8 without, or
GB18030 (what most Chinese banks' exports are).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

HEADERS = {
    "zh": ["交易日期", "交易流水号", "借方金额", "贷方金额", "对方户名", "对方账号", "摘要"],
    "en": ["Date", "Serial", "Debit", "Credit", "Payer", "Payer account", "Reference"],
}
ENCODINGS = {"utf-8-sig": "utf-8-sig", "utf-8": "utf-8", "gb18030": "gb18030"}


@dataclass(frozen=True)
class BankTransfer:
    """One transaction on the statement: the day, the amount [cents; negative: money out],
    the payer's name and account, the reference (摘要) and the bank's serial ('' for none)."""

    day: date
    cents: int
    payer: str = ""
    payer_account: str = ""
    reference: str = ""
    serial: str = ""


def yuan_grouped(cents: int) -> str:
    """Cents as the bank writes yuan: ``800000`` → ``8,000.00``."""
    return f"{abs(cents) // 100:,}.{abs(cents) % 100:02d}"


def bank_statement_text(
    lines: Iterable[BankTransfer], *, language: str = "zh", account: str = "6222020200001234"
) -> str:
    """The statement's CSV text: two title lines, the header, the rows, a totals row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    rows = list(lines)
    if language == "zh":
        writer.writerow(["账户明细查询"])
        writer.writerow([f"账号:{account}", "币种:人民币"])
    writer.writerow(HEADERS[language])
    for t in rows:
        writer.writerow(
            [
                t.day.isoformat(),
                t.serial,
                yuan_grouped(t.cents) if t.cents < 0 else "",
                yuan_grouped(t.cents) if t.cents > 0 else "",
                t.payer,
                t.payer_account,
                t.reference,
            ]
        )
    total_in = sum(t.cents for t in rows if t.cents > 0)
    writer.writerow(["合计" if language == "zh" else "Total", "", "", yuan_grouped(total_in)])
    return out.getvalue()


def write_bank_statement(
    path: Path,
    lines: Iterable[BankTransfer],
    *,
    encoding: str = "utf-8-sig",
    language: str = "zh",
) -> Path:
    """Write a bank statement CSV of ``lines`` at ``path`` in ``encoding`` (``utf-8-sig``,
    ``utf-8`` or ``gb18030``) with a ``zh`` or ``en`` header; returns ``path``."""
    text = bank_statement_text(lines, language=language)
    path.write_bytes(text.encode(ENCODINGS[encoding]))
    return path
