"""The lease ledger (台账) through its surfaces (issue #18): the template, a 200-lease workbook
checked then imported by a manager through the API, every bad cell named by sheet, row and
column with nothing stored, the same file again changing nothing, a changed draft updated and
a changed signed lease refused, the export imported again unchanged (xlsx and CSV, API and
command), building scope, and the lease operations (sign, hand over, renew, terminate) through
the API and the commands, each audited."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from cloud.leases import lifecycle
from cloud.leases.ledger_columns import (
    LEASE_COLUMNS,
    LEASES_SHEET,
    STEPS_SHEET,
    TENANTS_SHEET,
)
from cloud.leases.ledger_sheets import LeaseRec
from cloud.leases.models import Lease, LeaseTransition, Tenant
from cloud.leases.periods import LOCAL_TZ
from cloud.staff.models import AuditEntry
from tests.support.browser import WebRig, serve
from tests.support.ledger_book import MANAGER, ledger_records, write_ledger
from tests.support.ledger_web import (
    SITE,
    XLSX,
    auth,
    cli_run,
    count,
    edit_sheet,
    ledger_leases,
    ledger_rig,
    upload,
)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = ledger_rig(tmp_path_factory.mktemp("ledger"))
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=120) as client:
        yield client


def test_the_template_has_the_sheets_headers_and_lists(rig, client, tmp_path) -> None:
    reply = client.get("/api/v1/ledger/template", headers=auth(client, rig, "legal-a"))
    assert reply.status_code == 200 and reply.headers["content-type"] == XLSX
    wb = load_workbook(io.BytesIO(reply.content))
    assert wb.sheetnames == ["租户 Tenants", "单元 Units", LEASES_SHEET, STEPS_SHEET, "说明 Notes"]
    leases = wb[LEASES_SHEET]
    headers = [c.value for c in leases[1]]
    assert "开始日期\nStart" in headers and "状态\nStatus" in headers
    lists = [v.formula1 for v in leases.data_validations.dataValidation if v.type == "list"]
    assert '"draft,signed,active,expiring,open_ended,renewed,terminated"' in lists
    done = cli_run(rig, tmp_path, "ledger", "template", "--out", str(tmp_path / "t.xlsx"))
    assert done.exit_code == 0, done.output
    assert load_workbook(tmp_path / "t.xlsx").sheetnames == wb.sheetnames


def test_a_manager_checks_then_imports_a_200_lease_workbook_and_again_changes_nothing(
    rig, client, tmp_path
) -> None:
    book = write_ledger(tmp_path / "ledger.xlsx", SITE, 200)
    data = book.path.read_bytes()
    mgr = auth(client, rig, "mgr-l")
    checked = upload(client, mgr, data, "ledger.xlsx", dry_run=True)
    assert checked.status_code == 200, checked.text
    report = checked.json()
    assert report["ok"] and not report["stored"] and len(report["created"]) == 200
    assert ledger_leases(rig, f"{SITE}-L-L") == 0, "a dry run stores nothing"
    stored = upload(client, mgr, data, "ledger.xlsx", dry_run=False)
    assert stored.status_code == 200 and stored.json()["stored"], stored.text
    assert ledger_leases(rig, f"{SITE}-L-L") == 200
    by_status = {r.status: 0 for r in book.leases}
    for r in book.leases:
        by_status[r.status] += 1
    for status, n in by_status.items():
        assert count(rig, Lease, Lease.id.like(f"{SITE}-L-L%"), Lease.status == status) == n
    audited = count(
        rig,
        AuditEntry,
        AuditEntry.action == "ledger import",
        AuditEntry.subject.like("lease:park-a-L-L%"),
    )
    assert audited == 200
    with rig.sessions() as s:
        stepped = s.get(Lease, f"{SITE}-L-L0001")
        assert stepped.schedule["rent"]["kind"] == "stepped" and stepped.status == "active"
        child = s.get(Lease, f"{SITE}-L-L0009")
        assert child.parent_id == f"{SITE}-L-L0008"
        assert s.get(Lease, f"{SITE}-L-L0002").deposit_cents == 310_000  # given in yuan
        assert s.get(Lease, f"{SITE}-L-L0003").deposit_cents == 2 * 315_000  # two months
        signed = s.scalars(
            select(LeaseTransition.reason).where(
                LeaseTransition.lease_id == f"{SITE}-L-L0000", LeaseTransition.to_status == "signed"
            )
        ).one()
        assert signed == "signed (ledger)"
    again = upload(client, mgr, data, "ledger.xlsx", dry_run=False)
    body = again.json()
    assert again.status_code == 200 and body["unchanged"] == 200
    assert body["created"] == [] and body["updated"] == [] and body["tenants"] == 0
    assert count(rig, AuditEntry, AuditEntry.action == "ledger import") == audited


def test_every_bad_cell_is_named_and_nothing_is_stored(rig, client, tmp_path) -> None:
    extra = [
        LeaseRec(
            id="BAD-OVERLAP",
            tenant="T-ZHANG",
            unit="park-a-M0002",
            manager=MANAGER,
            kind="standard",
            start_on=date(2026, 6, 1),
            end_on=date(2027, 6, 1),
            rent_cents=100_000,
            steps=(),
            free_months=0,
            free_days=0,
            free_anchor="start",
            deposit_months=None,
            deposit_cents=0,
            cycle=1,
            due_days=10,
            parent=None,
            signed_on=None,
            handover_on=None,
            status="draft",
        ),
    ]
    path = tmp_path / "bad.xlsx"
    write_ledger(path, SITE, 20, building="M", extra=extra)
    data = edit_sheet(
        path,
        LEASES_SHEET,
        {
            (7, "Start"): "2026-13-01",
            (8, "Unit id"): "NO-SUCH-UNIT",
            (9, "Parent lease"): "NO-SUCH-LEASE",
            (10, "Lease id"): "park-a-M-L0000",  # the id of row 2
            (11, "Monthly rent (CNY)"): "12.345",
            (12, "Manager id"): "nobody",
            (13, "Unit id"): "PA-B201",  # building B: not mgr-m's
            (22, "Unit id"): "park-a-M0001",  # the unit of row 2's lease
            (22, "Start"): "2026-01-15",
        },
    )
    before = count(rig, Lease), count(rig, AuditEntry)
    mgr = auth(client, rig, "mgr-m")
    for dry_run in (True, False):
        reply = upload(client, mgr, data, "bad.xlsx", dry_run=dry_run)
        assert reply.status_code == 422, reply.text
        body = reply.json()
        assert not body["ok"] and not body["stored"]
        messages = [i["message"] for i in body["issues"]]
        joined = "\n".join(messages)
        for expected in (
            "租约 Leases row 7, column 开始日期/start_on: '2026-13-01' is not a date (YYYY-MM-DD)",
            "租约 Leases row 8, column 单元编号/unit: expected a unit of the site import, got "
            "'NO-SUCH-UNIT'",
            "租约 Leases row 9, column 上级租约/parent: expected a lease of the file or "
            "registered, got 'NO-SUCH-LEASE'",
            "租约 Leases row 10, column 租约编号/id: expected a unique id: 'park-a-M-L0000' is on "
            "row 2 too",
            "租约 Leases row 11, column 月租金（元）/rent: expected yuan ≥ 0 with at most two "
            "decimals, got '12.345'",
            "租约 Leases row 12, column 管家编号/manager: expected a registered staff id, got "
            "'nobody'",
            "租约 Leases row 13, column 单元编号/unit: unit 'PA-B201' is in building park-a/B, "
            "outside your buildings",
            "租约 Leases row 22: lease 'BAD-OVERLAP' overlaps lease 'park-a-M-L0000' of unit "
            "'park-a-M0001'",
        ):
            assert expected in joined, f"{expected}\nnot in\n{joined}"
        assert all(i["sheet"] and i["message"] for i in body["issues"])
        assert {i["row"] for i in body["issues"]} >= {7, 8, 9, 10, 11, 12, 13, 22}
        assert "L-B1" not in joined, "another building's lease is not named"
    assert (count(rig, Lease), count(rig, AuditEntry)) == before
    # the command line says the same, one cell a line, exit status 2
    path.write_bytes(data)
    refused = cli_run(rig, tmp_path, "ledger", "import", str(path), "--dry-run", "--as", "mgr-m")
    assert refused.exit_code == 2
    assert "租约 Leases row 7, column 开始日期/start_on" in refused.output
    assert "nothing stored" in refused.output and "Traceback" not in refused.output
    # not a workbook at all, and an unknown kind of file
    for name, junk in (("x.xlsx", b"PK\x03\x04 not really"), ("x.txt", b"hello")):
        reply = upload(client, mgr, junk, name, dry_run=True)
        assert reply.status_code == 422 and reply.json()["issues"][0]["sheet"] == "file"


def test_a_changed_draft_is_updated_a_changed_signed_lease_is_refused(rig, client, tmp_path):
    path = tmp_path / "m.xlsx"
    book = write_ledger(path, SITE, 6, building="M", start=date(2026, 3, 1))
    mgr = auth(client, rig, "mgr-m")
    first = upload(client, mgr, path.read_bytes(), "m.xlsx", dry_run=False)
    assert first.status_code == 200 and len(first.json()["created"]) == 6, first.text
    statuses = [r.status for r in book.leases]
    draft_row = statuses.index("draft") + 2
    signed_row = statuses.index("signed") + 2
    changed = edit_sheet(path, LEASES_SHEET, {(draft_row, "Monthly rent (CNY)"): 4321.5})
    reply = upload(client, mgr, changed, "m.xlsx", dry_run=False)
    assert reply.status_code == 200, reply.text
    assert reply.json()["updated"] == [book.leases[draft_row - 2].id]
    assert reply.json()["unchanged"] == 5
    with rig.sessions() as s:
        draft = s.get(Lease, book.leases[draft_row - 2].id)
        assert draft.schedule["rent"] == {"kind": "fixed", "monthly_cents": 432_150}
        assert draft.deposit_cents == 2 * 432_150
    path.write_bytes(changed)
    refused = edit_sheet(path, LEASES_SHEET, {(signed_row, "End"): date(2028, 3, 1)})
    reply = upload(client, mgr, refused, "m.xlsx", dry_run=False)
    assert reply.status_code == 422
    (issue,) = reply.json()["issues"]
    assert issue["row"] == signed_row
    assert (
        "is signed; the terms of a signed contract change only by renewal or termination"
        in (issue["message"])
    )
    assert "end_on" in issue["message"]


def test_the_export_imports_again_unchanged(rig, client, tmp_path) -> None:
    mgr = auth(client, rig, "mgr-l")
    n = count(rig, Lease, Lease.id.like(f"{SITE}-L-L%"))
    assert n >= 200  # the 200-lease import ran first
    before = count(rig, AuditEntry)
    for fmt in ("xlsx", "csv"):
        reply = client.get(f"/api/v1/ledger/export?site={SITE}&format={fmt}", headers=mgr)
        assert reply.status_code == 200, reply.text
        if fmt == "csv":
            assert reply.content.startswith("\ufeff".encode())
        again = upload(client, mgr, reply.content, f"export.{fmt}", dry_run=False)
        assert again.status_code == 200, again.text
        assert again.json()["unchanged"] == n and again.json()["created"] == []
    # the command: export as the manager, import again, nothing changes
    out = tmp_path / "export.xlsx"
    done = cli_run(
        rig, tmp_path, "ledger", "export", "--site", SITE, "--out", str(out), "--as", "mgr-l"
    )
    assert done.exit_code == 0, done.output
    again = cli_run(rig, tmp_path, "ledger", "import", str(out), "--json", "--as", "mgr-l")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output.splitlines()[0])["unchanged"] == n
    assert count(rig, AuditEntry) == before
    # the manager's export holds their building only; another site is not theirs
    wb = load_workbook(out)
    units = {row[2] for row in wb[LEASES_SHEET].iter_rows(min_row=2, values_only=True)}
    assert units and all(u.startswith(f"{SITE}-L") for u in units)
    assert client.get("/api/v1/ledger/export?site=park-b", headers=mgr).status_code == 404
    assert (
        client.get(
            f"/api/v1/ledger/export?site={SITE}", headers=auth(client, rig, "fin-a")
        ).status_code
        == 403
    )


def test_a_tenants_notice_language_comes_from_the_ledger(rig, client, tmp_path) -> None:
    """The Tenants sheet's optional 通知语言 column: ``en`` is stored, a blank keeps it, a
    value other than zh-CN/en is refused naming its cell, and a workbook from before the
    column was added still imports."""
    mgr = auth(client, rig, "mgr-l")
    book = write_ledger(tmp_path / "ledger.xlsx", SITE, 200)  # as imported before: unchanged
    assert upload(client, mgr, book.path.read_bytes(), "ledger.xlsx", False).status_code == 200
    reply = client.get(f"/api/v1/ledger/export?site={SITE}&format=xlsx", headers=mgr)
    path = tmp_path / "export.xlsx"
    path.write_bytes(reply.content)
    wb = load_workbook(path)
    tenants = wb[TENANTS_SHEET]
    headers = [str(c.value).split("\n")[-1] for c in tenants[1]]
    assert "Notice language" in headers
    first = tenants.cell(row=2, column=headers.index("Tenant id") + 1).value
    assert tenants.cell(row=2, column=headers.index("Notice language") + 1).value == "zh-CN"
    english = edit_sheet(path, TENANTS_SHEET, {(2, "Notice language"): "en"})
    stored = upload(client, mgr, english, "lang.xlsx", dry_run=False)
    assert stored.status_code == 200 and stored.json()["tenants"] == 1, stored.text
    with rig.sessions() as s:
        assert s.get(Tenant, first).language == "en"
    bad = upload(
        client,
        mgr,
        edit_sheet(path, TENANTS_SHEET, {(2, "Notice language"): "fr"}),
        "b.xlsx",
        False,
    )
    issues = bad.json()["issues"]
    assert bad.status_code == 422 and len(issues) == 1, bad.text
    assert issues[0]["column"] == "通知语言/language" and issues[0]["row"] == 2
    assert "expected one of zh-CN, en" in issues[0]["message"]
    # a workbook without the column (made before it was added): the language is kept
    tenants.delete_cols(headers.index("Notice language") + 1)
    old = io.BytesIO()
    wb.save(old)
    again = upload(client, mgr, old.getvalue(), "old.xlsx", dry_run=False)
    assert again.status_code == 200 and again.json()["tenants"] == 0, again.text
    with rig.sessions() as s:
        assert s.get(Tenant, first).language == "en"


def test_a_manager_of_another_building_cannot_import_into_this_one(rig, client, tmp_path):
    path = tmp_path / "other.csv"
    write_ledger(path, SITE, 3, building="L", start=date(2026, 9, 1))
    # mgr-m manages building M only: every row names a unit of building L
    reply = upload(client, auth(client, rig, "mgr-m"), path.read_bytes(), "other.csv", False)
    assert reply.status_code == 422
    issues = reply.json()["issues"]
    assert len([i for i in issues if "outside your buildings" in i["message"]]) == 3
    assert all(i["sheet"] == LEASES_SHEET and i["column"] == "单元编号/unit" for i in issues)
    legal = upload(client, auth(client, rig, "legal-a"), path.read_bytes(), "other.csv", True)
    assert legal.status_code == 403


def _today() -> date:
    from datetime import datetime

    return datetime.now(LOCAL_TZ).date()


def test_lease_operations_through_the_api_each_audited(rig, client, tmp_path) -> None:
    today = _today()
    rec = ledger_records(SITE, 5, building="M", start=today)[2][4]  # a draft
    assert rec.status == "draft"
    path = tmp_path / "ops.xlsx"
    write_ledger(path, SITE, 0, building="M", extra=[_moved(rec, "OPS-1", "park-a-M0025")])
    mgr = auth(client, rig, "mgr-m")
    assert upload(client, mgr, path.read_bytes(), "ops.xlsx", False).status_code == 200
    base = "/api/v1/leases/OPS-1"
    # another building's manager: not found, whatever is asked
    assert (
        client.post(f"{base}/sign", json={}, headers=auth(client, rig, "mgr-l")).status_code == 404
    )
    assert (
        client.post(f"{base}/sign", json={}, headers=auth(client, rig, "legal-a")).status_code
        == 403
    )
    reply = client.post(f"{base}/sign", json={"how": "e-sign"}, headers=mgr)
    assert reply.status_code == 200 and reply.json()["status"] == "signed", reply.text
    assert client.post(f"{base}/sign", json={}, headers=mgr).status_code == 409
    far = (today + timedelta(days=400)).isoformat()
    assert (
        client.post(f"{base}/handover", json={"handed_over_on": far}, headers=mgr).status_code
        == 422
    )
    reply = client.post(f"{base}/handover", json={"handed_over_on": today.isoformat()}, headers=mgr)
    assert reply.status_code == 200 and reply.json()["status"] == "active"
    assert client.post(f"{base}/renew", json={}, headers=mgr).status_code == 409  # not expiring
    refused = client.post(f"{base}/terminate", json={"reason": ""}, headers=mgr)
    assert refused.status_code == 400
    reply = client.post(
        f"{base}/terminate",
        json={"move_out_on": (today + timedelta(days=30)).isoformat(), "reason": "公司搬迁"},
        headers=mgr,
    )
    assert reply.status_code == 200 and reply.json()["status"] == "terminated"
    with rig.sessions() as s:
        entries = s.scalars(
            select(AuditEntry).where(AuditEntry.subject == "lease:OPS-1").order_by(AuditEntry.id)
        ).all()
        reasons = s.scalars(
            select(LeaseTransition.reason)
            .where(LeaseTransition.lease_id == "OPS-1")
            .order_by(LeaseTransition.id)
        ).all()
    assert [e.action for e in entries] == ["ledger import", "sign", "handover", "terminate"]
    assert all(e.actor == "mgr-m" and '"from": "api 127.0.0.1"' in e.detail for e in entries[1:])
    after = json.loads(entries[-1].detail)
    assert after["before"]["status"] == "active" and after["after"]["status"] == "terminated"
    assert after["note"] == "公司搬迁"
    assert "signed (e-sign)" in reasons


def _moved(rec: LeaseRec, lease_id: str, unit: str) -> LeaseRec:

    return replace(rec, id=lease_id, unit=unit, parent=None, tenant="T-ZHANG")


def test_lease_commands_sign_in_batch_renew_and_terminate(rig, client, tmp_path) -> None:
    today = _today()
    drafts = [
        _moved(
            ledger_records(SITE, 5, building="M", start=today)[2][4], f"CLI-{n}", f"park-a-M00{n}"
        )
        for n in (26, 27, 28)
    ]
    path = tmp_path / "cli.xlsx"
    write_ledger(path, SITE, 0, building="M", extra=drafts)
    done = cli_run(rig, tmp_path, "ledger", "import", str(path), "--as", "mgr-m")
    assert done.exit_code == 0 and "3 created" in done.output, done.output
    ids = tmp_path / "ids.csv"
    ids.write_text("租约编号\nCLI-26\nCLI-27\nNOPE\n", encoding="utf-8")
    signed = cli_run(
        rig, tmp_path, "lease", "sign", "--from-csv", str(ids), "--how", "paper", "--as", "mgr-m"
    )
    assert signed.exit_code == 2  # NOPE is refused, the others are signed
    assert '"lease": "CLI-26", "status": "signed"' in signed.output
    assert "NOPE: no lease 'NOPE'" in signed.output
    ok = cli_run(rig, tmp_path, "lease", "handover", "CLI-26", "--as", "mgr-m")
    assert ok.exit_code == 0 and '"status": "active"' in ok.output, ok.output
    # an expiring lease renews at a new rent
    with rig.sessions.begin() as s:
        lifecycle.mark_expiring(s, s.get(Lease, "CLI-26"), today=today, by="test")
    renewed = cli_run(
        rig,
        tmp_path,
        "lease",
        "renew",
        "CLI-26",
        "--rent",
        "5200.00",
        "--months",
        "24",
        "--as",
        "mgr-m",
    )
    assert renewed.exit_code == 0, renewed.output
    successor = json.loads(renewed.output)["successor"]
    with rig.sessions() as s:
        new = s.get(Lease, successor)
        assert new.schedule["rent"]["monthly_cents"] == 520_000 and new.renewed_from_id == "CLI-26"
        assert s.get(Lease, "CLI-26").status == "renewed"
    bad = cli_run(rig, tmp_path, "lease", "terminate", "CLI-27", "--as", "mgr-m")
    assert bad.exit_code == 2 and "--reason" in bad.output
    gone = cli_run(
        rig,
        tmp_path,
        "lease",
        "terminate",
        "CLI-27",
        "CLI-28",
        "--reason",
        "withdrawn",
        "--as",
        "mgr-m",
    )
    assert gone.exit_code == 2  # CLI-28 is a draft: a draft is not terminated
    assert '"lease": "CLI-27", "status": "terminated"' in gone.output
    assert "CLI-28: lease 'CLI-28' is draft" in gone.output
    audited = count(
        rig,
        AuditEntry,
        AuditEntry.subject.in_(["lease:CLI-26", "lease:CLI-27", f"lease:{successor}"]),
        AuditEntry.action != "ledger import",
    )
    assert audited == 6  # CLI-26 signed, handed over, renewed; its successor; CLI-27 too


def test_files_out_of_bounds_or_unreadable_are_refused_saying_what_was_expected(
    rig, client
) -> None:
    mgr = auth(client, rig, "mgr-l")
    header = "租约编号 Lease id,租户编号 Tenant id,Unit id\r\n"
    for data, name, expected in (
        (header.encode(), "x.csv", "missing column(s) 管家编号/manager"),
        ("租约编号,bogus\r\n".encode(), "x.csv", "unknown column 'bogus'"),
        ("租约编号".encode("gb18030"), "x.csv", "not UTF-8 text"),
    ):
        reply = upload(client, mgr, data, name, dry_run=True)
        assert reply.status_code == 422, reply.text
        assert expected in json.dumps(reply.json(), ensure_ascii=False), reply.text
    full = ",".join(c.zh for c in LEASE_COLUMNS)
    many = (full + "\r\n").encode() + b",,\r\n" * 20_001
    reply = upload(client, mgr, many, "many.csv", dry_run=True)
    assert reply.status_code == 422
    assert "more than 20000 rows" in reply.text
    big = upload(client, mgr, b"x" * (4 * 1024 * 1024 + 1), "big.csv", dry_run=True)
    assert big.status_code == 413 and "larger than 4 MiB" in big.text
    huge = upload(client, mgr, b"x" * (6 * 1024 * 1024), "huge.csv", dry_run=True)
    assert huge.status_code == 413
