"""Staff records from the command line: a manager and their supervisor registered and
changed with ``meterflow cloud staff set``, listed with ``staff list``; an unknown
supervisor, a supervisor chain back to the person, an unknown channel and a role that may
not register staff are refused with what was expected; every change is in the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cloud.registry.db import open_registry
from cloud.staff.models import AuditEntry
from meterflow.cli import app


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "MF_DB_URL": f"sqlite:///{tmp_path / 'registry.sqlite'}",
        "MF_DATA_DIR": str(tmp_path),
        "MF_WEB_ACCOUNT_PASSWORD": "a long enough secret",
    }


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["cloud", "staff", *args], env=env)
    return result.exit_code, result.output


def test_staff_are_registered_changed_listed_and_audited(env: dict[str, str]) -> None:
    assert run(env, "set", "sup-1", "--name", "周主管", "--address", "z@staff.test")[0] == 0
    code, out = run(env, "set", "chen", "--name", "陈管家", "--supervisor", "sup-1")
    assert code == 0 and json.loads(out)["changed"] is True
    code, out = run(env, "set", "chen", "--name", "陈管家", "--supervisor", "sup-1")
    assert json.loads(out)["changed"] is False
    code, out = run(env, "set", "chen", "--name", "陈管家", "--channel", "wecom", "--address", "c1")
    assert code == 0 and json.loads(out)["supervisor_id"] is None
    code, out = run(env, "list", "--json")
    rows = {r["id"]: r for r in json.loads(out)}
    assert rows["chen"]["channel"] == "wecom" and rows["sup-1"]["name"] == "周主管"
    with open_registry(env["MF_DB_URL"])() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.subject == "staff:chen")).all()
    assert len(audit) == 2 and all(a.actor == "cli" for a in audit)
    last = json.loads(audit[-1].detail)
    assert last["from"] == "cli" and last["before"]["supervisor_id"] == "sup-1"
    assert last["after"] == {"address": "c1", "channel": "wecom", "supervisor_id": None}
    # the language of their notices: Chinese unless set, kept when not given again
    assert rows["chen"]["language"] == "zh-CN"
    code, out = run(env, "set", "chen", "--name", "陈管家", "--language", "en")
    assert code == 0 and json.loads(out)["language"] == "en"
    code, out = run(env, "set", "chen", "--name", "Chen")
    assert code == 0 and json.loads(out)["language"] == "en"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["set", "x", "--name", "X", "--supervisor", "nobody"], "supervisor 'nobody' is not"),
        (["set", "sup-1", "--name", "Z", "--supervisor", "chen"], "reports to them"),
        (["set", "x", "--name", "X", "--channel", "fax"], "expected one of"),
        (["set", "x", "--name", "X", "--language", "fr"], "expected one of zh-CN, en"),
        (["set", "x", "--name", "  "], "a name has 1-200 characters"),
        (["set", "x", "--name", "X", "--as", "fin"], "may not register staff"),
    ],
)
def test_bad_staff_records_are_refused_saying_what_was_expected(
    env: dict[str, str], args: list[str], says: str
) -> None:
    run(env, "set", "sup-1", "--name", "周主管")
    run(env, "set", "chen", "--name", "陈管家", "--supervisor", "sup-1")
    CliRunner().invoke(
        app, ["cloud", "web-account", "fin", "--role", "finance", "--site", "park-a"], env=env
    )
    code, out = run(env, *args)
    assert code == 2 and says in out and "Traceback" not in out, out
