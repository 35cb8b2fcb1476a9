"""``meterflow cloud run``: runs from the command line on a real registry (SQLite under
MF_DATA_DIR) with the cloud key there — list, show (lines in the apportion command's JSON
form), review → approve → post as staff accounts with four eyes and the audit log, void,
and every refusal as exit status 2 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cloud.apportion.case.loading import case_from_data, load_case
from cloud.apportion.engine import apportion
from cloud.apportion.models import ApportionRun, ApportionStatement
from cloud.apportion.runs import create_run
from cloud.apportion.statement import SignedStatement, verify_statement
from cloud.gateways.provisioning import CloudSigner
from cloud.registry.db import open_registry
from cloud.staff.accounts import AccountService, Role
from cloud.staff.models import AuditEntry
from meterflow.cli.apportion import report
from meterflow.cli.cloud import cloud_app

CASES = Path(__file__).parents[1] / "cases"
PASSWORD = "correct horse battery"


@dataclass
class Rig:
    data: Path
    sessions: sessionmaker[Session]
    signer: CloudSigner
    draft: str  # park-a, basic.yaml, created by fin-a
    held: str  # park-b, negative residual, created by seed

    def run(self, *args: str, data: Path | None = None) -> Result:
        env = {"MF_DATA_DIR": str(data or self.data), "MF_DB_URL": self.sessions_url}
        return CliRunner().invoke(cloud_app, ["run", *args], env=env)

    @property
    def sessions_url(self) -> str:
        return f"sqlite:///{self.data / 'registry.sqlite'}"

    def audit(self, run_id: str) -> list[tuple[str, str]]:
        with self.sessions() as s:
            subject = AuditEntry.subject == f"run:{run_id}"
            rows = s.scalars(select(AuditEntry).where(subject).order_by(AuditEntry.id))
            return [(e.actor, e.action) for e in rows]


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[Rig]:
    data = tmp_path / "cloud"
    data.mkdir()
    sessions = open_registry(f"sqlite:///{data / 'registry.sqlite'}")
    signer = CloudSigner.load_or_create(data / "cloud.key")
    accounts = AccountService(sessions)
    for name, role, sites in (
        ("admin", Role.ADMIN, []),
        ("fin-a", Role.FINANCE, ["park-a"]),
        ("fin-a2", Role.FINANCE, ["park-a"]),
        ("eng-a", Role.ENGINEER, ["park-a"]),
        ("fin-b", Role.FINANCE, ["park-b"]),
        ("gone", Role.FINANCE, ["park-a"]),
    ):
        accounts.create_account(name, PASSWORD, role, sites)
    accounts.disable_account("gone")
    with sessions.begin() as s:
        draft = create_run(s, load_case(CASES / "basic.yaml"), by="fin-a").id
        held = yaml.safe_load((CASES / "negative_residual.yaml").read_text())
        held_id = create_run(s, case_from_data({**held, "site": "park-b"}), by="seed").id
    yield Rig(data, sessions, signer, draft, held_id)
    sessions.kw["bind"].dispose()


def refused(result: Result, *words: str) -> None:
    """Exit status 2, one ``error:`` line naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_review_approve_post_with_four_eyes_and_the_audit_log(rig: Rig) -> None:
    ok = rig.run("review", rig.draft, "--as", "fin-a2", "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout) == {"id": rig.draft, "status": "reviewed", "by": "fin-a2"}
    # four eyes: neither the creator nor the reviewer approves
    refused(rig.run("approve", rig.draft, "--as", "fin-a"), "'fin-a' created it", "four eyes")
    refused(rig.run("approve", rig.draft, "--as", "fin-a2"), "'fin-a2' reviewed it")
    with rig.sessions() as s:
        run = s.get(ApportionRun, rig.draft)
        assert run is not None and (run.status, run.approved_by) == ("reviewed", None)
    ok = rig.run("approve", rig.draft, "--as", "admin")
    assert ok.exit_code == 0 and ok.stdout.strip() == f"run {rig.draft}: approved by admin"
    ok = rig.run("post", rig.draft, "--as", "fin-a")
    assert ok.exit_code == 0, ok.output
    # each step once in the audit log, by who did it; the refusals wrote nothing
    assert rig.audit(rig.draft) == [("fin-a2", "review"), ("admin", "approve"), ("fin-a", "post")]
    with rig.sessions() as s:
        run = s.get(ApportionRun, rig.draft)
        assert run is not None
        assert (run.status, run.created_by, run.reviewed_by, run.approved_by, run.posted_by) == (
            "posted",
            "fin-a",
            "fin-a2",
            "admin",
            "fin-a",
        )
        stored = s.scalars(
            select(ApportionStatement).where(ApportionStatement.run_id == rig.draft)
        ).all()
    assert len(stored) == 3
    for x in stored:  # signed with the cloud key of MF_DATA_DIR
        verify_statement(SignedStatement(x.payload, x.kid, x.signature), rig.signer.public_key)
    refused(rig.run("post", rig.draft, "--as", "fin-a"), "posted", "only an approved run")


def test_list_and_show_print_the_apportion_commands_json_lines(rig: Rig) -> None:
    listed = rig.run("list", "--json")
    assert listed.exit_code == 0, listed.output
    runs = json.loads(listed.stdout)
    assert [r["id"] for r in runs] == [rig.held, rig.draft]  # newest first
    draft = runs[1]
    assert (draft["site"], draft["status"], draft["held"], draft["created_by"]) == (
        "park-a",
        "draft",
        False,
        "fin-a",
    )
    case = load_case(CASES / "basic.yaml")
    expected = report(apportion(case.to_engine_inputs()), case.input_hash())
    assert draft["total_cny"] == "720.00" and draft["total_cents"] == expected["bill_cents"]
    assert [r["id"] for r in json.loads(rig.run("list", "--json", "--as", "fin-b").stdout)] == [
        rig.held
    ]
    held = json.loads(rig.run("list", "--status", "draft", "--site", "park-b", "--json").stdout)
    assert [r["id"] for r in held] == [rig.held] and held[0]["held"]
    text = rig.run("list")
    assert text.exit_code == 0 and "HOLD" in text.stdout and "720.00" in text.stdout
    refused(rig.run("list", "--status", "done"), "--status 'done'", "draft")

    shown = rig.run("show", rig.draft, "--json")
    assert shown.exit_code == 0, shown.output
    doc: dict[str, Any] = json.loads(shown.stdout)
    assert doc["lines"] == expected["lines"]  # one JSON form for both commands
    assert doc["input_hash"] == expected["input_hash"] and doc["total_cny"] == "720.00"
    assert sum(s["cents"] for s in doc["statements"]) == expected["bill_cents"]
    assert [(s["unit"], s["party"]) for s in doc["statements"]] == [
        ("", "landlord"),
        ("A101", "ACME"),
        ("A102", "BETA"),
    ]
    text = rig.run("show", rig.held)
    assert text.exit_code == 0 and "HOLD negative_residual" in text.stdout
    refused(rig.run("show", rig.draft, "--as", "fin-b"), "no run", "fin-b")
    refused(rig.run("show", "no-such-run"), "no run 'no-such-run'")


def test_every_refusal_is_one_line_and_exit_status_2(rig: Rig, tmp_path: Path) -> None:
    refused(rig.run("review", "no-such-run", "--as", "fin-a"), "no run 'no-such-run'")
    refused(rig.run("review", rig.draft, "--as", "nobody"), "no staff account 'nobody'")
    refused(rig.run("review", rig.draft, "--as", "gone"), "'gone' is disabled")
    refused(rig.run("review", rig.draft, "--as", "eng-a"), "engineer role", "admin or finance")
    refused(rig.run("review", rig.draft, "--as", "fin-b"), "no run", "'fin-b'")
    refused(rig.run("approve", rig.draft, "--as", "admin"), "draft", "only a reviewed run")
    assert rig.run("review", rig.held, "--as", "fin-b").exit_code == 0
    refused(rig.run("approve", rig.held, "--as", "admin"), "held by", "negative_residual")
    refused(rig.run("void", rig.held, "--as", "fin-b", "--reason", " "), "needs a reason")
    # posting needs the cloud's key in MF_DATA_DIR; nothing is made up in its place
    assert rig.run("review", rig.draft, "--as", "fin-a2").exit_code == 0
    assert rig.run("approve", rig.draft, "--as", "admin").exit_code == 0
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    refused(rig.run("post", rig.draft, "--as", "fin-a", data=empty), "no cloud key at")
    assert not (empty / "cloud.key").exists()
    assert rig.audit(rig.draft) == [("fin-a2", "review"), ("admin", "approve")]
    voided = rig.run("void", rig.held, "--as", "fin-b", "--reason", "meter UB misread", "--json")
    assert json.loads(voided.stdout)["status"] == "void"
    assert rig.audit(rig.held) == [("fin-b", "review"), ("fin-b", "void")]
    refused(rig.run("void", rig.held, "--as", "admin", "--reason", "again"), "void already")


def test_the_installed_command_runs_it(rig: Rig) -> None:
    env = {**os.environ, "MF_DATA_DIR": str(rig.data), "MF_DB_URL": rig.sessions_url}
    done = subprocess.run(
        [sys.executable, "-m", "meterflow", "cloud", "run", "approve", rig.draft, "--as", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "error: --as: no staff account 'x'; expected an existing account"
