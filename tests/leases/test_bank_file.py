"""Reading bank statements (cloud/leases/bankfile.py): Chinese and English headers and their
aliases, UTF-8 with and without BOM and GB18030, the bank's title lines, amounts with
thousands separators, credit/debit columns, a signed amount or a direction column, malformed
rows named by row and column, bounds; and the reference ids matching reads."""

from __future__ import annotations

from datetime import date

import pytest

from cloud.leases.bank_matching import normalise_name, reference_ids
from cloud.leases.bankfile import (
    MAX_BYTES,
    MAX_ROWS,
    StatementFileError,
    parse_cents,
    parse_day,
    read_statement,
)
from meterflow.scenarios.bank_statement import BankTransfer, bank_statement_text

DAY = date(2026, 3, 5)
LINES = [
    BankTransfer(DAY, 800_000, "张伟", "6222 0001", "房租 L-A1/2026-03", "S1"),
    BankTransfer(DAY, -1_500, "工商银行", "", "手续费", "S2"),
    BankTransfer(DAY, 1_234_567_89, "王氏贸易（上海）有限公司", "6222 0002", "", ""),
]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gb18030"])
@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_generated_statement_reads_back_in_every_encoding(encoding, language) -> None:
    raw = bank_statement_text(LINES, language=language).encode(encoding)
    got = read_statement(raw)
    assert got.problems == []
    assert [(x.booked_on, x.cents, x.payer, x.serial) for x in got.lines] == [
        (DAY, 800_000, "张伟", "S1"),
        (DAY, 1_234_567_89, "王氏贸易（上海）有限公司", ""),
    ]
    assert (got.debits, got.debit_cents) == (1, 1_500)
    assert got.lines[0].key == "serial:2026-03-05/800000/S1"
    assert got.lines[1].key.startswith("sha256:")


def test_aliases_signed_amounts_and_direction_columns() -> None:
    signed = (
        "记账日期,金额(元),付款人,付款账号,附言\n"
        '2026/3/5,"-2,000.00",x,,fee\n'
        "20260306,¥300,李娜,123,L-A2\n"
    )
    got = read_statement(signed.encode())
    assert [(x.booked_on, x.cents, x.payer_account, x.reference) for x in got.lines] == [
        (date(2026, 3, 6), 30_000, "123", "L-A2")
    ]
    assert got.debit_cents == 200_000
    way = (
        "Transaction Date,Amount,Direction,Counterparty,Memo,Remark\n"
        "2026年3月7日 10:31:00,50.5,贷,A,rent,march\n"
        "2026-03-07,9,借,B,,\n"
    )
    got = read_statement(way.encode())
    assert [(x.cents, x.reference) for x in got.lines] == [(5_050, "rent march")]
    assert got.debits == 1


def test_malformed_rows_are_named_by_row_and_column() -> None:
    text = (
        "交易日期,贷方金额,借方金额,对方户名\n"
        "2026-03-05,12.345,,a\n"
        "2026-02-30,1.00,,b\n"
        "2026-03-05,1.00,2.00,c\n"
        "2026-03-05,,,d\n"
        "2026-03-05,1.00,,e\n"
        "合计,1.00\n"
    )
    got = read_statement(text.encode())
    assert len(got.lines) == 1 and got.lines[0].payer == "e"
    assert got.problems[0].startswith("row 2, column '贷方金额': '12.345' is not an amount")
    assert got.problems[1].startswith("row 3, column '交易日期': '2026-02-30' is not a day")
    assert got.problems[2].startswith("row 4, columns '贷方金额' and '借方金额': both")
    assert got.problems[3] == "row 5, column '贷方金额': empty, expected an amount"


def test_two_equal_transfers_on_one_day_are_two_lines_with_stable_keys() -> None:
    same = [BankTransfer(DAY, 100, "x"), BankTransfer(DAY, 100, "x")]
    first = read_statement(bank_statement_text(same).encode())
    again = read_statement(bank_statement_text(same).encode("gb18030"))
    assert len({x.key for x in first.lines}) == 2
    assert [x.key for x in first.lines] == [x.key for x in again.lines]


def test_what_is_not_a_statement_is_refused_with_what_was_expected() -> None:
    with pytest.raises(StatementFileError, match="no header row: expected a row naming a date"):
        read_statement(b"a,b,c\n1,2,3\n")
    with pytest.raises(StatementFileError, match="UTF-8 or GB18030"):
        read_statement(b"\x89PNG\r\n\x1a\n\xff\xff\xff")
    with pytest.raises(StatementFileError, match="expected at most"):
        read_statement(b"x" * (MAX_BYTES + 1))
    rows = "交易日期,金额\n" + "2026-03-05,1\n" * MAX_ROWS
    with pytest.raises(StatementFileError, match=f"more than {MAX_ROWS} rows"):
        read_statement(rows.encode())
    long = "交易日期,金额,摘要\n2026-03-05,1," + "长" * 201 + "\n"
    assert "201 characters, expected at most 200" in read_statement(long.encode()).problems[0]


@pytest.mark.parametrize(
    ("text", "cents"),
    [("8,000.00", 800_000), ("8000", 800_000), ("-0.5", -50), ("CNY 1,234,567.8", 123_456_780)],
)
def test_amounts(text: str, cents: int) -> None:
    assert parse_cents(text) == cents


@pytest.mark.parametrize("text", ["8,00.00", "1e3", "12.345", "", "12,3456", "¥"])
def test_bad_amounts(text: str) -> None:
    with pytest.raises(ValueError, match="expected yuan"):
        parse_cents(text)


def test_days_and_reference_ids_and_names() -> None:
    assert parse_day("2026/3/5 09:00") == DAY == parse_day("20260305")
    assert {"L-A1", "L-A1/2026-03"} <= reference_ids("房租 l-a1-2026-03 谢谢")
    assert {"L-A1", "L-A1/2026-03"} <= reference_ids("L-A1/2026-03")
    assert reference_ids("房租") == set()
    assert normalise_name("王氏贸易（上海）有限公司") == normalise_name("王氏贸易(上海) 有限公司")
