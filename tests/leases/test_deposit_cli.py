"""``meterflow cloud deposit`` (decision 0041): the refund of a terminated lease through its
steps with ``--as`` — request, deduct with a PDF, inspect, settle (to the cent), approve,
pay with the bank transfer's number, a deduction added by mistake taken back — and the
refused acts exiting 2 with the reason: a
lease still running, a second request, no evidence, a file that is not JPEG/PNG/PDF, a step
out of order, the settler approving, a manager of another building, legal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cloud.staff.models import AuditEntry
from meterflow.cli import app
from tests.support.browser import PASSWORD, WebRig, make_rig
from tests.support.lease_scope import seed_leases

PDF = b"%PDF-1.4\n% a moving-out inspection report\n"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("deposit-cli"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    rig.cli_env = {  # type: ignore[attr-defined]
        "MF_DB_URL": str(rig.sessions.kw["bind"].url),
        "MF_DATA_DIR": str(tmp_path_factory.mktemp("deposit-cli-data")),
    }
    yield rig
    rig.sessions.kw["bind"].dispose()


def run(rig: WebRig, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["cloud", *args], env=rig.cli_env)  # type: ignore[attr-defined]
    return result.exit_code, result.output


def ok(rig: WebRig, *args: str) -> dict:
    code, out = run(rig, *args, "--json")
    assert code == 0, (args, out)
    return json.loads(out)


def refused(rig: WebRig, *args: str) -> str:
    code, out = run(rig, *args)
    assert code == 2, (args, out)
    assert "Traceback" not in out
    return out


def test_a_deposit_refund_from_the_command_line(rig: WebRig, tmp_path: Path) -> None:
    code, out = run(rig, "lease", "terminate", "L-A2", "--reason", "moved out", "--as", "mgr-a")
    assert code == 0, out
    assert "after termination" in refused(rig, "deposit", "request", "L-A1", "--as", "mgr-a")
    refund = ok(rig, "deposit", "request", "L-A2", "--as", "mgr-a")
    rid = str(refund["id"])
    assert refund["state"] == "requested" and refund["deposit_cents"] == 1_000_000
    assert "requested already" in refused(rig, "deposit", "request", "L-A2", "--as", "mgr-a")
    assert "no lease 'L-A2'" in refused(rig, "deposit", "request", "L-A2", "--as", "mgr-ab")

    report, fake = tmp_path / "report.pdf", tmp_path / "photo.png"
    report.write_bytes(PDF)
    fake.write_text("<html><body>not a photo</body></html>")
    deduct = ("deposit", "deduct", rid, "--yuan", "1234.56", "--reason", "broken lock")
    assert "at least one file" in refused(rig, *deduct, "--as", "mgr-a")
    assert "expected a JPEG, PNG or PDF" in refused(
        rig, *deduct, "--evidence", str(fake), "--as", "mgr-a"
    )
    assert "expected yuan like 300.00" in refused(
        rig, "deposit", "deduct", rid, "--yuan", "12.345", "--reason", "x",
        "--evidence", str(report), "--as", "mgr-a",
    )  # fmt: skip
    added = ok(rig, *deduct, "--evidence", str(report), "--as", "mgr-a")
    assert added["deductions"][0]["files"][0]["content_type"] == "application/pdf"
    # a deduction added by mistake is taken back, saying why, before the settlement
    wrong = ("deposit", "deduct", rid, "--yuan", "99.00", "--reason", "wrong unit's stain")
    mistake = ok(rig, *wrong, "--evidence", str(report), "--as", "mgr-a")["deductions"][-1]["id"]
    assert "role does not" in refused(
        rig, "deposit", "take-back", rid, str(mistake), "--reason", "x", "--as", "fin-a"
    )
    assert "reason: expected 1 to" in refused(
        rig, "deposit", "take-back", rid, str(mistake), "--reason", " ", "--as", "mgr-a"
    )
    kept = ok(
        rig, "deposit", "take-back", rid, str(mistake), "--reason", "other unit", "--as", "mgr-a"
    )
    assert [d["reason"] for d in kept["deductions"]] == ["broken lock"]
    assert "has no deduction" in refused(
        rig, "deposit", "take-back", rid, str(mistake), "--reason", "again", "--as", "mgr-a"
    )

    assert "only a inspected refund can become settled" in refused(
        rig, "deposit", "settle", rid, "--as", "mgr-a"
    )
    ok(rig, "deposit", "inspect", rid, "--as", "mgr-a")
    settled = ok(rig, "deposit", "settle", rid, "--as", "sup-a")
    assert (settled["refund_cents"], settled["deductions_cents"]) == (1_000_000 - 123_456, 123_456)
    assert "settled by you" in refused(rig, "deposit", "approve", rid, "--as", "sup-a")
    first = str(settled["deductions"][0]["id"])
    assert "taken back before the settlement" in refused(
        rig, "deposit", "take-back", rid, first, "--reason", "late", "--as", "sup-a"
    )
    assert "role does not approve" in refused(rig, "deposit", "approve", rid, "--as", "mgr-a")
    assert "no deposit refund" in refused(rig, "deposit", "show", rid, "--as", "mgr-ab")
    assert "role does not read" in refused(rig, "deposit", "list", "--as", "legal-a")
    ok(rig, "deposit", "approve", rid, "--as", "fin-a")
    assert "--reference" in refused(rig, "deposit", "pay", rid, "--as", "fin-a")
    paid = ok(rig, "deposit", "pay", rid, "--reference", "ICBC-0001", "--as", "fin-a")
    assert (paid["state"], paid["payment_ref"]) == ("paid", "ICBC-0001")
    listed = ok(rig, "deposit", "list", "--state", "paid", "--as", "sup-a")
    assert [r["id"] for r in listed] == [int(rid)]
    code, shown = run(rig, "deposit", "show", rid, "--as", "mgr-a")
    assert code == 0 and "paid with bank transfer ICBC-0001" in shown and "broken lock" in shown

    with rig.sessions() as s:
        audited = [
            (e.action, e.actor)
            for e in s.scalars(
                select(AuditEntry).where(AuditEntry.subject == "lease:L-A2").order_by(AuditEntry.id)
            )
            if e.action.startswith("deposit_")
        ]
    assert audited == [
        ("deposit_request", "mgr-a"),
        ("deposit_deduction", "mgr-a"),
        ("deposit_deduction", "mgr-a"),
        ("deposit_deduction_removed", "mgr-a"),
        ("deposit_inspect", "mgr-a"),
        ("deposit_settle", "sup-a"),
        ("deposit_approve", "fin-a"),
        ("deposit_pay", "fin-a"),
    ]
