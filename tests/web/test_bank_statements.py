"""Bank statements through the API and the command line (issue #18, decision 0033), on SQLite
and PostgreSQL: a GB18030 statement's credit lines are matched by reference and by amount with
the payer's name, the debit line is ignored, the rest waits unmatched; the same statement
again records nothing; an ambiguous reference stays unmatched with its candidates; a
manager's import matches only their buildings; the queue is assigned (payment, payer account
learned: next month matches by account) or dismissed; a malformed file is refused whole with
row and column; a paid invoice is never dunned by ``meterflow cloud daily``; credit notes need
another person's approval and the next bill applies them; everything is in the audit log."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cloud.leases.models import BankLine, CollectionEvent, CreditEntry, Invoice, Payment
from cloud.leases.periods import local_today
from cloud.staff.models import AuditEntry
from meterflow.cli import app as cli_app
from meterflow.scenarios.bank_statement import BankTransfer, write_bank_statement
from tests.support import servers
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.support.lease_scope import seed_leases

TODAY = local_today()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rig(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[WebRig]:
    """The leases of tests/support/lease_scope.py on SQLite, then on PostgreSQL."""
    work = tmp_path_factory.mktemp(f"bank-{request.param}")
    if request.param == "sqlite":
        rig = make_rig(work, months=1)
        seed_leases(rig.sessions, PASSWORD)
        yield rig
        rig.sessions.kw["bind"].dispose()
        return
    server = request.getfixturevalue("postgres_server")
    with servers.fresh_postgres_database(server, "bank") as url:
        rig = make_rig(work, url=url, months=1)
        seed_leases(rig.sessions, PASSWORD)
        yield rig
        rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def as_(client: httpx.Client, rig: WebRig, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {rig.token(client, who)}"}


def cli(rig: WebRig, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "MF_DB_URL": rig.sessions.kw["bind"].url.render_as_string(hide_password=False),
        "MF_DATA_DIR": str(tmp_path),
    }
    return CliRunner().invoke(cli_app, ["cloud", *args], env=env)


def upload(
    client: httpx.Client, headers: dict[str, str], path: Path, dry_run: bool = False
) -> httpx.Response:
    return client.post(
        "/api/v1/bank-statements",
        files={"file": (path.name, path.read_bytes(), "text/csv")},
        data={"dry_run": "true" if dry_run else "false"},
        headers=headers,
    )


def invoice(rig: WebRig, invoice_id: str) -> tuple[str, int, int]:
    with rig.sessions() as s:
        row = s.get(Invoice, invoice_id)
        assert row is not None
        return row.status, row.total_cents, row.paid_cents


def counts(rig: WebRig) -> tuple[int, int]:
    with rig.sessions() as s:
        return (
            s.scalar(select(func.count()).select_from(BankLine)),
            s.scalar(select(func.count()).select_from(Payment)),
        )


def audit(rig: WebRig, prefix: str) -> list[AuditEntry]:
    with rig.sessions() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.subject.like(f"{prefix}%"))))


FIRST = [
    BankTransfer(TODAY, 800_000, "张伟", "6222000011110001", "房租 L-A1-2026-02", "SN-001"),
    BankTransfer(TODAY, 1_000_000, "赵敏", "6222000011110004", "二月房租", "SN-002"),
    BankTransfer(TODAY, 50_000, "某某贸易有限公司", "6222999900001111", "货款", "SN-003"),
    BankTransfer(TODAY, -12_000, "银行", "", "手续费", "SN-004"),
    BankTransfer(TODAY, 30_000, "李娜", "", "L-A2 和 L-B1 的押金", "SN-005"),
]


def test_a_gb18030_statement_is_matched_and_importing_it_again_records_nothing(
    rig: WebRig, client: httpx.Client, tmp_path: Path
) -> None:
    path = write_bank_statement(tmp_path / "march.csv", FIRST, encoding="gb18030")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # really GB18030
    admin = as_(client, rig, "admin")
    assert invoice(rig, "L-A1/2026-02") == ("open", 1_000_000, 200_000)
    assert invoice(rig, "L-P1/2026-02") == ("open", 1_000_000, 0)
    before = counts(rig)
    preview = upload(client, admin, path, dry_run=True)
    assert preview.status_code == 200, preview.text
    assert preview.json()["matched"] == 2 and counts(rig) == before  # a dry run stores nothing
    reply = upload(client, admin, path)
    assert reply.status_code == 201, reply.text
    got = reply.json()
    assert (got["matched"], got["matched_cents"]) == (2, 1_800_000)
    assert (got["unmatched"], got["unmatched_cents"]) == (2, 80_000)
    assert (got["ignored"], got["ignored_cents"], got["duplicate"]) == (1, 12_000, 0)
    lines = {line["serial"]: line for line in got["lines"]}
    assert lines["SN-001"]["lease_id"] == "L-A1" and lines["SN-001"]["matched_by"] == "reference"
    assert lines["SN-001"]["settled"] == [{"invoice": "L-A1/2026-02", "cents": 800_000}]
    assert lines["SN-002"]["lease_id"] == "L-P1" and lines["SN-002"]["matched_by"] == "name"
    assert lines["SN-003"]["status"] == "unmatched" and lines["SN-003"]["candidates"] == []
    # two leases named in the reference: ambiguous, unmatched with both as candidates
    assert lines["SN-005"]["status"] == "unmatched"
    assert lines["SN-005"]["candidates"] == ["L-A2", "L-B1"]
    assert invoice(rig, "L-A1/2026-02") == ("paid", 1_000_000, 1_000_000)
    assert invoice(rig, "L-P1/2026-02") == ("paid", 1_000_000, 1_000_000)
    with rig.sessions() as s:
        refs = set(s.scalars(select(Payment.ref).where(Payment.lease_id.in_(["L-A1", "L-P1"]))))
    assert {"SN-001", "SN-002"} <= refs  # the bank's serial is the payment's reference
    payments = [a for a in audit(rig, "lease:") if a.actor == "admin" and a.action == "payment"]
    assert len(payments) == 2 and all(
        json.loads(a.detail)["from"].startswith("api ") for a in payments
    )
    assert {a.subject for a in payments} == {"lease:L-A1", "lease:L-P1"}
    assert len([a for a in audit(rig, "bankline:") if a.actor == "admin"]) == 4
    # the same statement again, even re-encoded as UTF-8: nothing new
    again_path = write_bank_statement(tmp_path / "again.csv", FIRST, encoding="utf-8-sig")
    after = counts(rig)
    again = upload(client, admin, again_path).json()
    assert (again["duplicate"], again["matched"], again["unmatched"]) == (4, 0, 0)
    assert counts(rig) == after
    assert invoice(rig, "L-A1/2026-02") == ("paid", 1_000_000, 1_000_000)


def test_a_managers_import_matches_only_leases_of_their_buildings(
    rig: WebRig, client: httpx.Client, tmp_path: Path
) -> None:
    path = write_bank_statement(
        tmp_path / "b.csv",
        [BankTransfer(TODAY, 10_000, "张伟", "", "L-A1 水电", "SN-B-1")],
        encoding="utf-8",
        language="en",
    )
    reply = upload(client, as_(client, rig, "mgr-ab"), path)  # building B of park-a only
    assert reply.status_code == 201, reply.text
    line = reply.json()["lines"][0]
    assert line["status"] == "unmatched" and line["candidates"] == []
    # legal reads leases but takes no money
    assert upload(client, as_(client, rig, "legal-a"), path).status_code == 403
    # the manager of building A sees it in the queue and assigns it to the lease
    mgr_a = as_(client, rig, "mgr-a")
    queue = client.get("/api/v1/bank-lines?status=unmatched", headers=mgr_a).json()["lines"]
    mine = next(q for q in queue if q["serial"] == "SN-B-1")
    refused = client.post(
        f"/api/v1/bank-lines/{mine['id']}/assign",
        json={"lease_id": "L-A1"},
        headers=as_(client, rig, "mgr-ab"),
    )
    assert refused.status_code == 404  # the lease is not in building B
    done = client.post(
        f"/api/v1/bank-lines/{mine['id']}/assign", json={"lease_id": "L-A1"}, headers=mgr_a
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "matched" and done.json()["matched_by"] == "assigned"
    twice = client.post(
        f"/api/v1/bank-lines/{mine['id']}/assign", json={"lease_id": "L-A1"}, headers=mgr_a
    )
    assert twice.status_code == 409 and "matched" in twice.json()["detail"]
    # a matched line of building A is not in building B's list
    seen_by_b = client.get("/api/v1/bank-lines", headers=as_(client, rig, "mgr-ab")).json()
    assert all(line["id"] != mine["id"] for line in seen_by_b["lines"])
    changes = [json.loads(a.detail) for a in audit(rig, f"bankline:{mine['id']}")]
    assert changes[-1]["before"]["status"] == "unmatched"
    assert changes[-1]["after"]["status"] == "matched" and changes[-1]["after"]["lease"] == "L-A1"


def test_the_queue_is_assigned_or_dismissed_and_the_payer_account_is_learned(
    rig: WebRig, client: httpx.Client, tmp_path: Path
) -> None:
    fin = as_(client, rig, "fin-a")
    queue = client.get("/api/v1/bank-lines?status=unmatched", headers=fin).json()["lines"]
    goods = next(q for q in queue if q["serial"] == "SN-003")
    dismissed = client.post(
        f"/api/v1/bank-lines/{goods['id']}/dismiss",
        json={"reason": "供应商退款，非租金"},
        headers=fin,
    )
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "ignored"
    ignored = client.get("/api/v1/bank-lines?status=ignored", headers=fin).json()["lines"]
    assert [q["note"] for q in ignored if q["id"] == goods["id"]] == ["供应商退款，非租金"]
    deposit = next(q for q in queue if q["serial"] == "SN-005")
    assigned = client.post(
        f"/api/v1/bank-lines/{deposit['id']}/assign", json={"lease_id": "L-A2"}, headers=fin
    )
    assert assigned.status_code == 200, assigned.text
    assert client.get("/api/v1/bank-lines?status=unmatched", headers=fin).json()["lines"] == []
    # next month: 李娜 pays L-A2's March invoice from the account learned... she had none;
    # 赵敏's account (learned from SN-002) matches her March payment under another name
    bill = cli(rig, tmp_path, "bill", "--period", "2026-03", "--date", "2026-03-01")
    assert bill.exit_code == 0, bill.output
    status, total, paid = invoice(rig, "L-P1/2026-03")
    assert status == "open"
    path = write_bank_statement(
        tmp_path / "april.csv",
        [BankTransfer(TODAY, total - paid, "赵敏的公司", "6222000011110004", "rent", "SN-101")],
    )
    done = cli(rig, tmp_path, "bank", "import", str(path), "--json", "--as", "admin")
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["matched"] == 1 and report["lines"][0]["matched_by"] == "account"
    assert report["lines"][0]["lease_id"] == "L-P1"
    assert invoice(rig, "L-P1/2026-03")[0] == "paid"


def test_a_malformed_statement_is_refused_whole_and_a_dry_run_shows_each_row(
    rig: WebRig, client: httpx.Client, tmp_path: Path
) -> None:
    text = (
        "交易日期,贷方金额,对方户名,摘要\n"
        f'{TODAY},"1,000.00",张三,ok\n'
        f"{TODAY},12.345,李四,three decimals\n"
        f"{TODAY + timedelta(days=3)},5.00,王五,future\n"
    )
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    before = counts(rig)
    admin = as_(client, rig, "admin")
    refused = upload(client, admin, path)
    assert refused.status_code == 422
    problems = refused.json()["problems"]
    assert any(p.startswith("row 3, column '贷方金额'") and "12.345" in p for p in problems)
    assert any(p.startswith("row 4") and "to today" in p for p in problems)
    assert counts(rig) == before  # nothing half-imported
    preview = upload(client, admin, path, dry_run=True).json()
    assert len(preview["problems"]) == 2 and preview["unmatched"] == 1
    assert counts(rig) == before
    not_csv = tmp_path / "photo.csv"
    not_csv.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    reply = upload(client, admin, not_csv)
    assert reply.status_code == 422 and "UTF-8 or GB18030" in reply.json()["detail"]
    out = cli(rig, tmp_path, "bank", "import", str(path))
    assert out.exit_code == 2 and "row 3, column '贷方金额'" in out.output
    assert "Traceback" not in out.output and counts(rig) == before


def test_a_paid_invoice_is_never_dunned_by_the_daily_run(rig: WebRig, tmp_path: Path) -> None:
    daily = cli(rig, tmp_path, "daily", "--date", TODAY.isoformat())
    assert daily.exit_code == 0, daily.output
    with rig.sessions() as s:
        dunned = set(s.scalars(select(CollectionEvent.invoice_id)))
    assert "L-A2/2026-03" in dunned  # the ladder runs: March of L-A2 is unpaid
    assert "L-A1/2026-02" not in dunned and "L-P1/2026-02" not in dunned
    assert "L-P1/2026-03" not in dunned  # paid from the learned account


def test_credit_notes_need_another_persons_approval_and_the_next_bill_applies_them(
    rig: WebRig, client: httpx.Client, tmp_path: Path
) -> None:
    mgr = as_(client, rig, "mgr-ab")
    asked = client.post(
        "/api/v1/leases/L-B1/credit-notes",
        json={"amount_cny": "321.00", "reason": "空调维修期间减免"},
        headers=mgr,
    )
    assert asked.status_code == 201, asked.text
    note = asked.json()
    assert note["status"] == "requested" and note["cents"] == 32_100
    url = f"/api/v1/credit-notes/{note['id']}"
    assert client.post(f"{url}/approve", json={}, headers=mgr).status_code == 403  # a manager
    other = client.post(
        "/api/v1/leases/L-A1/credit-notes", json={"amount_cny": "5", "reason": "x"}, headers=mgr
    )
    assert other.status_code == 404  # not their building
    huge = client.post(
        "/api/v1/leases/L-B1/credit-notes",
        json={"amount_cny": "9999999999", "reason": "x"},
        headers=mgr,
    )
    assert huge.status_code == 422 and "expected 0.01 to 1000000.00" in huge.json()["detail"]
    # finance asks, and may not approve its own request (four eyes)
    own = cli(rig, tmp_path, "credit-note", "request", "--lease", "L-B1", "--amount", "99",
              "--reason", "goodwill", "--as", "fin-a")  # fmt: skip
    assert own.exit_code == 0, own.output
    own_id = json.loads(own.output)["id"]
    self_approved = cli(rig, tmp_path, "credit-note", "approve", str(own_id), "--as", "fin-a")
    assert self_approved.exit_code == 2 and "requested by you" in self_approved.output
    rejected = cli(rig, tmp_path, "credit-note", "reject", str(own_id), "--as", "fin-a2")
    assert rejected.exit_code == 0 and json.loads(rejected.output)["status"] == "rejected"
    approved = client.post(f"{url}/approve", json={"note": "ok"}, headers=as_(client, rig, "sup-a"))
    assert approved.status_code == 200 and approved.json()["decided_by"] == "sup-a"
    again = client.post(f"{url}/reject", json={}, headers=as_(client, rig, "fin-a"))
    assert again.status_code == 409
    with rig.sessions() as s:
        entries = s.execute(
            select(CreditEntry.kind, CreditEntry.ref, CreditEntry.cents).where(
                CreditEntry.lease_id == "L-B1", CreditEntry.kind == "credit_note"
            )
        ).all()
        balance = s.scalar(
            select(func.sum(CreditEntry.cents)).where(CreditEntry.lease_id == "L-B1")
        )
    assert entries == [("credit_note", f"credit-note:{note['id']}", 32_100)]  # not the rejected
    bill = cli(rig, tmp_path, "bill", "--period", "2026-04", "--date", "2026-04-01")
    assert bill.exit_code == 0, bill.output
    with rig.sessions() as s:
        applied = s.scalar(
            select(func.sum(CreditEntry.cents)).where(
                CreditEntry.lease_id == "L-B1",
                CreditEntry.kind == "applied",
                CreditEntry.ref == "L-B1/2026-04",
            )
        )
    assert applied == -balance and balance >= 32_100
    trail = [json.loads(a.detail) for a in audit(rig, "lease:L-B1") if a.action == "credit_note"]
    assert [t["after"]["status"] for t in trail] == [
        "requested",
        "requested",
        "rejected",
        "approved",
    ]


def test_the_unmatched_command_lists_the_queue(rig: WebRig, tmp_path: Path) -> None:
    path = write_bank_statement(tmp_path / "late.csv", [BankTransfer(TODAY, 777, "无名")])
    legal = cli(rig, tmp_path, "bank", "import", str(path), "--as", "legal-a")
    assert legal.exit_code == 2 and "the legal role takes no money" in legal.output
    assert cli(rig, tmp_path, "bank", "import", str(path), "--as", "fin-a").exit_code == 0
    listed = cli(rig, tmp_path, "bank", "unmatched", "--json", "--as", "mgr-a")
    assert listed.exit_code == 0, listed.output
    lines = json.loads(listed.output)
    assert [line["cents"] for line in lines] == [777]
    refused = cli(rig, tmp_path, "bank", "assign", str(lines[0]["id"]), "--lease", "L-B1",
                  "--as", "mgr-a")  # fmt: skip
    assert refused.exit_code == 2 and "no lease 'L-B1'" in refused.output
    done = cli(rig, tmp_path, "bank", "assign", str(lines[0]["id"]), "--lease", "L-A2",
               "--as", "mgr-a")  # fmt: skip
    assert done.exit_code == 0 and json.loads(done.output)["lease_id"] == "L-A2"
