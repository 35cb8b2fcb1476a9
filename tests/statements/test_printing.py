"""What a printed statement carries besides the statement: the due date (posting day in the
site's zone + due_days), the signature's fingerprint, reviewer and approver by display name
(the user name when an account has none), nothing signed nor due for a draft; and the
``web-account --display-name`` command that sets the printed name."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from cloud.apportion.review import NotFound
from cloud.staff.accounts import Principal, Role, SessionKind, display_names
from cloud.statements.printing import (
    PropertyCompany,
    StatementPrintService,
    due_date,
    signature_fingerprint,
)
from meterflow.cli.web import cloud_web_account
from tests.support.browser import PASSWORD, WebRig, make_rig, serve


def test_due_date_is_the_local_posting_day_plus_due_days() -> None:
    late = datetime(2026, 4, 30, 20, 0, tzinfo=UTC)  # 05-01 04:00 in Shanghai
    assert due_date(late, "Asia/Shanghai", 10) == date(2026, 5, 11)
    assert due_date(late, "Europe/Berlin", 10) == date(2026, 5, 10)
    assert due_date(late, "Asia/Shanghai", 0) == date(2026, 5, 1)
    assert due_date(None, "Asia/Shanghai", 10) is None


def test_fingerprint_is_the_signatures_sha256_in_four_groups() -> None:
    one = base64.urlsafe_b64encode(bytes(64)).rstrip(b"=").decode()
    other = base64.urlsafe_b64encode(bytes(63) + b"\x01").rstrip(b"=").decode()
    fp = signature_fingerprint(one)
    assert re.fullmatch(r"[0-9A-F]{4}(-[0-9A-F]{4}){3}", fp)
    # sha256 of 64 zero bytes starts f5a5fd42d16a2030…
    assert fp == "F5A5-FD42-D16A-2030"
    assert signature_fingerprint(other) != fp


def test_property_company_defaults() -> None:
    assert PropertyCompany.from_settings(None) == PropertyCompany("", "", "", 15)
    assert PropertyCompany.from_settings({"company": "甲", "due_days": 5}).due_days == 5


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("printing"), months=1)
    rig.web.accounts.create_account(
        "seed-approver", PASSWORD, Role.FINANCE, ["park-a"], display_name="李强"
    )
    yield rig
    rig.sessions.kw["bind"].dispose()


def who(rig: WebRig, name: str) -> Principal:
    found = rig.web.accounts.principal(
        rig.web.accounts.sign_in(name, PASSWORD).token, SessionKind.COOKIE
    )
    assert found is not None
    return found


def test_a_posted_statements_slip(rig: WebRig) -> None:
    slip = StatementPrintService(rig.web.runs).slip(
        who(rig, "fin-a"), rig.seeded.latest, "A101", "ACME"
    )
    assert slip.signed is not None and slip.cents == slip.document["total"]["cents"]
    assert slip.reviewer == "seed-reviewer"  # no such account: its user name
    assert slip.approver == "李强"
    assert slip.company == PropertyCompany()  # park-a has no property section
    assert slip.posted_on is not None and slip.due_on is not None
    assert (slip.due_on - slip.posted_on).days == 15
    assert slip.fingerprint == signature_fingerprint(slip.signed["signature"])


def test_a_drafts_slip_has_no_signature_nor_due_date(rig: WebRig) -> None:
    slips, total = StatementPrintService(rig.web.runs).run_slips(
        who(rig, "fin-a"), rig.seeded.draft
    )
    assert [(s.unit, s.party) for s in slips] == [("A101", "ACME"), ("A102", "BETA")] and total == 2
    assert all(s.signed is None and s.due_on is None and s.fingerprint == "" for s in slips)
    assert all(s.reviewer == "" and s.approver == "" for s in slips)


def test_slips_come_in_batches_read_by_the_database(rig: WebRig) -> None:
    """A batch is the tenants' statements ``start`` … ``start + count − 1`` (never the
    landlord's own); past the last, or none asked for, is an empty batch; the count is the
    run's tenant statements whatever the batch."""
    service = StatementPrintService(rig.web.runs)
    fin = who(rig, "fin-a")
    run = rig.seeded.draft
    batches = {
        (start, count): service.run_slips(fin, run, start, count)
        for start, count in ((0, 1), (1, 1), (1, 100), (2, 1), (9, 5), (0, 0), (-3, 1))
    }
    shown = {k: ([(s.unit, s.party) for s in slips], n) for k, (slips, n) in batches.items()}
    assert shown == {
        (0, 1): ([("A101", "ACME")], 2),
        (1, 1): ([("A102", "BETA")], 2),
        (1, 100): ([("A102", "BETA")], 2),
        (2, 1): ([], 2),
        (9, 5): ([], 2),
        (0, 0): ([], 2),
        (-3, 1): ([("A101", "ACME")], 2),
    }


def test_another_sites_run_is_not_found(rig: WebRig) -> None:
    with pytest.raises(NotFound):
        StatementPrintService(rig.web.runs).run_slips(
            who(rig, "fin-a"), rig.seeded.other_site_posted
        )


def test_web_account_sets_the_display_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path / "cloud"))
    monkeypatch.setenv("MF_WEB_ACCOUNT_PASSWORD", "a long password")
    cli = typer.Typer()
    cli.command()(cloud_web_account)
    runner = CliRunner()
    args = ["carol", "--role", "finance", "--site", "park-a"]
    made = runner.invoke(cli, [*args, "--display-name", "王芳"])
    assert made.exit_code == 0, made.output
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    sessions = registry(Settings())
    with sessions() as s:
        assert display_names(s, ["carol", "cli"]) == {"carol": "王芳", "cli": "cli"}
    assert runner.invoke(cli, args).exit_code == 0  # a reset without it keeps the name
    with sessions() as s:
        assert display_names(s, ["carol"]) == {"carol": "王芳"}
    too_long = runner.invoke(cli, [*args, "--display-name", "x" * 101])
    assert too_long.exit_code == 2 and "at most 100" in too_long.output
    sessions.kw["bind"].dispose()


def test_a_statement_that_does_not_verify_is_refused_not_printed(tmp_path: Path) -> None:
    from sqlalchemy import text

    from cloud.apportion.models import ApportionStatement

    rig = make_rig(tmp_path, months=1)
    with rig.sessions.begin() as s:  # tampered behind the application's back
        stored = s.get(ApportionStatement, (rig.seeded.latest, "A101", "ACME"))
        assert stored is not None
        s.execute(
            text(
                "UPDATE apportion_statements SET payload = :p WHERE run_id = :r AND unit = 'A101'"
            ),
            {"p": stored.payload.replace('"ACME"', '"ACNE"', 1), "r": rig.seeded.latest},
        )
    cookie = {"Cookie": f"mf_session={rig.web.accounts.sign_in('fin-a', PASSWORD).token}"}
    with serve(rig.app) as url, httpx.Client(base_url=url, headers=cookie) as client:
        for path in ("statements/A101/ACME", "print"):
            page = client.get(f"/finance/runs/{rig.seeded.latest}/{path}")
            assert page.status_code == 409 and "签名校验未通过" in page.text, path
            assert 'data-testid="sheet"' not in page.text
    rig.sessions.kw["bind"].dispose()
