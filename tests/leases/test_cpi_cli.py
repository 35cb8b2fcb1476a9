"""``meterflow cloud cpi`` (decision 0042): a CPI-linked lease bills up to its adjustment and
is held; ``cpi list`` names the month it waits for and ``bill`` the months in its output;
NBS-style year-on-year figures (上年同月=100) or fixed-base levels (定基) imported, the next
``bill`` bills the risen rent, equal to the hand-computed cents. Bad files refused with the
row and column named and nothing stored; a changed month only as a correction, never one an
issued invoice used."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cloud.leases.cpi_file import MAX_BYTES
from cloud.leases.models import CpiIndex, InvoiceLine
from cloud.leases.terms import CpiLinked
from cloud.registry.db import open_registry
from cloud.staff.accounts import AccountService, Role
from cloud.staff.models import AuditEntry
from meterflow.cli.cpi import cpi_app
from meterflow.cli.leases import cloud_bill
from tests.support.cpi_samples import cpi_months_stored
from tests.support.leases_portfolio import UnitSpec, running_lease, seed_site, terms

app = typer.Typer()
app.command("bill")(cloud_bill)
app.add_typer(cpi_app, name="cpi")

#: L1: adjusted every January by the CPI of the December before (lag 1)
YOY_LEASE = CpiLinked(monthly_cents=500_000, cap=Decimal("0.05"), lag_months=1)
#: L2: adjusted every March by the CPI of the January before (lag 2)
LEVEL_LEASE = CpiLinked(monthly_cents=500_000, cap=Decimal("0.05"), lag_months=2)


@pytest.fixture()
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    monkeypatch.setenv("MF_DB_URL", url)
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path))
    sessions = open_registry(url)
    with sessions.begin() as s:
        seed_site(s, [UnitSpec("A101"), UnitSpec("A102")], tenants=2)
        running_lease(
            s, terms("L1", "A101", "T1", date(2025, 1, 1), date(2028, 1, 1), rent=YOY_LEASE)
        )
        running_lease(
            s, terms("L2", "A102", "T2", date(2025, 3, 1), date(2028, 3, 1), rent=LEVEL_LEASE)
        )
    accounts = AccountService(sessions)
    accounts.create_account("fin", "a long secret 1", Role.FINANCE, ["S1"])
    accounts.create_account("mgr", "a long secret 1", Role.SUPERVISOR, ["S1"])
    return sessions


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run(*args: str) -> dict:
    code, out, err = invoke(*args)
    assert code == 0, out + err
    return json.loads(out.strip().splitlines()[-1])


def bill(period: str) -> dict:
    return run("bill", "--period", period, "--date", f"{period}-01")


def rent_of(sessions: sessionmaker[Session], invoice: str, lease: str) -> int | None:
    with sessions() as s:
        return s.scalar(
            select(InvoiceLine.cents).where(
                InvoiceLine.invoice_id == invoice,
                InvoiceLine.lease_id == lease,
                InvoiceLine.kind == "rent",
            )
        )


def write(tmp_path: Path, text: str, name: str = "cpi.csv", bom: bool = False) -> str:
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return str(path)


def test_a_yoy_figure_as_nbs_publishes_it_lets_the_held_lease_bill(sessions, tmp_path) -> None:
    bill("2025-12")
    assert rent_of(sessions, "L1/2025-12", "L1") == 500_000
    held = bill("2026-01")
    assert held["waiting_for_cpi"] == [
        {"lease": "L1", "since": "2026-01-01", "cpi_months": ["2025-12"]}
    ]
    assert rent_of(sessions, "L1/2026-01", "L1") is None
    listed = run("cpi", "list", "--json", "--as", "fin")
    assert listed["series"] == []
    assert listed["waiting"][0] == {
        "lease_id": "L1",
        "tenant_id": "T1",
        "tenant_name": "Tenant 1",
        "unit_id": "A101",
        "unit_name": "A101",
        "since": "2026-01-01",
        "months": ["2025-12"],
    }
    code, out, _ = invoke("cpi", "list", "--as", "fin")
    assert code == 0 and "waiting: L1\tTenant 1" in out and "needs CPI of 2025-12" in out
    # the NBS table as typed: 上年同月=100, a BOM from Excel, the Chinese header
    path = write(
        tmp_path, "月份,口径,数值\n2025-11,上年同月=100,100.7\n2025-12,yoy,102.37\n", bom=True
    )
    dry = run("cpi", "import", path, "--dry-run", "--json", "--as", "fin")
    assert (dry["dry_run"], dry["new"]) == (True, 2) and cpi_months_stored(sessions) == 0
    done = run("cpi", "import", path, "--json", "--as", "fin")
    assert (done["new"], done["replanned"]) == (2, 2)
    assert run("cpi", "list", "--json", "--as", "fin")["waiting"][0]["lease_id"] == "L2"
    after = bill("2026-01")
    assert after["waiting_for_cpi"] == []
    # 500 000 × 102.37 ÷ 100 = 511 850 cents
    assert rent_of(sessions, "L1/2026-01", "L1") == 511_850
    with sessions() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.subject == "cpi:2025-12")).one()
        assert audit.actor == "fin" and audit.action == "cpi_publish"
    again = run("cpi", "import", path, "--json", "--as", "fin")
    assert (again["new"], again["unchanged"]) == (0, 2)


def test_a_level_series_gives_the_rise_as_a_ratio(sessions, tmp_path) -> None:
    run("cpi", "set", "2025-12", "100.8", "--json", "--as", "fin")  # L1's, yoy
    bill("2026-02")
    assert bill("2026-03")["waiting_for_cpi"] == [
        {"lease": "L2", "since": "2026-03-01", "cpi_months": ["2026-01"]}
    ]
    run("cpi", "set", "2026-01", "618.9", "--basis", "level", "--json", "--as", "fin")
    # January's level alone does not say the rise: the level of a year before is missing
    waits = {w["lease_id"]: w for w in run("cpi", "list", "--json", "--as", "fin")["waiting"]}
    assert waits["L2"]["months"] == ["2025-01"]
    assert bill("2026-03")["waiting_for_cpi"][0]["cpi_months"] == ["2025-01"]
    assert rent_of(sessions, "L2/2026-03", "L2") is None
    run("cpi", "set", "2025-01", "612.3", "--basis", "level", "--json", "--as", "fin")
    assert bill("2026-03")["waiting_for_cpi"] == []
    # 500 000 × 618.9 ÷ 612.3 = 505 389.51… → 505 390 cents
    assert rent_of(sessions, "L2/2026-03", "L2") == 505_390


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("month,basis,value\n2025-13,yoy,100.4\n", "row 2, column month: month '2025-13'"),
        ("month,basis,value\n2025/12,yoy,100.4\n", "row 2, column month: month '2025/12'"),
        ("month,basis,value\n2099-01,yoy,100.4\n", "row 2, column month"),
        ("month,basis,value\n2025-12,mom,100.4\n", "row 2, column basis: basis 'mom'"),
        ("month,basis,value\n2025-12,yoy,300\n", "row 2, column value: value '300'"),
        ("month,basis,value\n2025-12,level,0\n", "row 2, column value: value '0'"),
        ("month,basis,value\n2025-12,yoy,abc\n", "row 2, column value: value 'abc'"),
        ("month,basis,value\n2025-12,yoy,-100\n", "row 2, column value"),
        ("month,basis,value\n2025-12,yoy,100.12345\n", "at most 4 decimals"),
        (
            "month,basis,value\n2025-11,yoy,100.4\n2025-12,yoy,100.2\n2025-12,yoy,100.3\n",
            "row 4, column month: 2025-12 is given twice (also row 3)",
        ),
        ("month,value\n2025-12,100.4\n", "row 1: the header lacks basis"),
    ],
)
def test_bad_files_are_refused_whole_with_row_and_column(
    sessions, tmp_path, text: str, expected: str
) -> None:
    code, _out, err = invoke("cpi", "import", write(tmp_path, text), "--as", "fin")
    assert code == 2 and expected in err, err
    assert "Traceback" not in err and cpi_months_stored(sessions) == 0


def test_an_oversize_or_foreign_file_and_a_role_that_does_not_keep_cpi(sessions, tmp_path):
    big = "month,basis,value\n" + "2025-12,yoy,100.4\n" * (MAX_BYTES // 18 + 1)
    code, _out, err = invoke("cpi", "import", write(tmp_path, big), "--as", "fin")
    assert code == 2 and f"expected at most {MAX_BYTES}" in err
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("月份,口径,数值\n2025-12,定基,100\n".encode("gb18030"))
    code, _out, err = invoke("cpi", "import", str(gbk), "--as", "fin")
    assert code == 2 and "not UTF-8" in err
    code, _out, err = invoke("cpi", "set", "2025-12", "100.4", "--as", "mgr")
    assert code == 2 and "does not keep the CPI series" in err
    code, _out, err = invoke("cpi", "set", "2025-12", "100.4", "--basis", "qoq", "--as", "fin")
    assert code == 2 and "expected yoy" in err
    assert cpi_months_stored(sessions) == 0


def test_a_correction_needs_correct_and_a_note_and_never_changes_issued_rent(
    sessions, tmp_path
) -> None:
    run("cpi", "set", "2025-12", "101", "--json", "--as", "fin")
    code, _out, err = invoke("cpi", "set", "2025-12", "102", "--as", "fin")
    assert code == 2 and "stored as yoy 101" in err and "--correct" in err
    code, _out, err = invoke("cpi", "set", "2025-12", "102", "--correct", "--as", "fin")
    assert code == 2 and "a note" in err
    # corrected before any invoice used it: the plan follows, the bill uses 102
    fixed = run(
        "cpi", "set", "2025-12", "102", "--correct", "--note", "typo", "--json", "--as", "fin"
    )
    assert fixed["corrected"] == 1 and fixed["months"][0]["before"]["value"] == "101.0000"
    bill("2026-01")
    assert rent_of(sessions, "L1/2026-01", "L1") == 510_000
    code, _out, err = invoke(
        "cpi", "set", "2025-12", "103", "--correct", "--note", "NBS revised", "--as", "fin"
    )
    assert code == 2, err
    assert "lease L1's rent from 2026-01-01 on used it, on issued invoice L1/2026-01" in err
    # a file with a new month and that correction: refused whole, the new month not stored
    path = write(tmp_path, "month,basis,value\n2025-10,yoy,100.2\n2025-12,yoy,103\n")
    code, _out, err = invoke("cpi", "import", path, "--correct", "--note", "NBS", "--as", "fin")
    assert code == 2 and "on issued invoice L1/2026-01" in err
    with sessions() as s:
        assert s.get(CpiIndex, date(2025, 10, 1)) is None
        assert s.get(CpiIndex, date(2025, 12, 1)).level == Decimal(102)
        actions = s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.subject == "cpi:2025-12")
            .order_by(AuditEntry.id)
        ).all()
    assert actions == ["cpi_publish", "cpi_correct"]


def test_a_cycle_held_is_caught_up_on_the_next_period_and_never_billed_twice(sessions) -> None:
    bill("2025-12")
    held = bill("2026-01")
    assert held["waiting_for_cpi"][0]["lease"] == "L1"
    with sessions() as s:  # the held lease's account waits whole: no invoice of late fees
        assert s.scalar(select(InvoiceLine).where(InvoiceLine.invoice_id == "L1/2026-01")) is None
    run("cpi", "set", "2025-12", "102.37", "--basis", "yoy", "--json", "--as", "fin")
    bill("2026-02")
    with sessions() as s:
        rents = s.execute(
            select(InvoiceLine.covers_from, InvoiceLine.cents)
            .where(InvoiceLine.invoice_id == "L1/2026-02", InvoiceLine.kind == "rent")
            .order_by(InvoiceLine.covers_from)
        ).all()
    assert rents == [(date(2026, 1, 1), 511_850), (date(2026, 2, 1), 511_850)]
    late = bill("2026-01")  # January run again, after February: January's rent is billed
    assert late["rent_cents"] == 0 and rent_of(sessions, "L1/2026-01", "L1") is None
