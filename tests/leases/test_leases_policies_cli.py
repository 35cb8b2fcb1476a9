"""``meterflow cloud policy import`` / ``policy show`` and the daily job following each
lease's policy: a site's office policy with the legal hand-over on day 14 hands an office
lease's unpaid invoice to legal on day 14 and a residential one's of the same site on day 15
(the default ladder); a file with any error is refused whole, duplicate keys included."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from cloud.leases import reference
from cloud.leases.models import CollectionEvent, LeaseTask, SitePolicyRow
from cloud.registry.db import open_registry
from cloud.staff.accounts import AccountService, Role
from cloud.staff.models import AuditEntry
from meterflow.cli.leases import cloud_bill, cloud_daily
from meterflow.cli.policies import policy_app
from tests.support.leases_portfolio import UnitSpec, running_lease, seed_site, terms

app = typer.Typer()
app.command("bill")(cloud_bill)
app.command("daily")(cloud_daily)
app.add_typer(policy_app, name="policy")

POLICIES = """\
policies:
  - site: S1
    property_type: all
    from: 2025-01-01
    preset: standard
  - site: S1
    property_type: office
    from: 2025-06-01
    fields:
      ladder:
        - {days: 1, action: reminder}
        - {days: 3, action: internal_task}
        - {days: 7, action: call_task}
        - {days: 14, action: legal_handover}
"""


@pytest.fixture()
def registry_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    monkeypatch.setenv("MF_DB_URL", url)
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path))
    sessions = open_registry(url)
    with sessions.begin() as s:
        seed_site(s, [UnitSpec("A101"), UnitSpec("A102")], tenants=2)
        reference.set_unit_profile(s, "A101", "office", property_type="office")
        running_lease(s, terms("L1", "A101", "T1", date(2025, 4, 1), date(2026, 4, 1)))
        running_lease(s, terms("L2", "A102", "T2", date(2025, 9, 1), date(2026, 9, 1)))
    accounts = AccountService(sessions)
    accounts.create_account("fin", "a long secret 1", Role.FINANCE, ["S1"])
    accounts.create_account("sup", "a long secret 1", Role.SUPERVISOR, ["S1"])
    sessions.kw["bind"].dispose()
    return url


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def run(*args: str) -> dict[str, object]:
    code, out, err = invoke(*args)
    assert code == 0, out + err
    return json.loads(out.strip().splitlines()[-1])


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "policies.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def stored(url: str) -> list[tuple[str, str, date]]:
    sessions = open_registry(url)
    with sessions() as s:
        rows = [
            (r.site_id, r.property_type, r.effective_from)
            for r in s.scalars(select(SitePolicyRow).order_by(SitePolicyRow.id))
        ]
    sessions.kw["bind"].dispose()
    return rows


def test_office_leases_go_to_legal_on_day_14_residential_on_day_15(
    registry_url: str, tmp_path: Path
) -> None:
    file = write(tmp_path, POLICIES)
    dry = run("policy", "import", file, "--dry-run", "--json")
    assert (dry["dry_run"], dry["created"], len(dry["policies"])) == (True, 0, 2)
    assert stored(registry_url) == []
    code, _, err = invoke("policy", "import", file, "--as", "fin")
    assert code == 2 and "admins and supervisors set them" in err
    assert stored(registry_url) == []
    made = run("policy", "import", file, "--json", "--as", "sup")
    assert made["created"] == 2
    assert stored(registry_url) == [
        ("S1", "all", date(2025, 1, 1)),
        ("S1", "office", date(2025, 6, 1)),
    ]
    shown = run("policy", "show", "--lease", "L1", "--date", "2026-01-20", "--json")
    labels = {f["field"]: f["label"] for f in shown["fields"]}
    assert labels["ladder"] == "site/type since 2025-06-01"
    assert labels["reminder_offsets_days"] == "site since 2025-01-01"
    # before the office set's first day, the site-wide one applies
    early = run("policy", "show", "--lease", "L1", "--date", "2025-05-31", "--json")
    assert {f["field"]: f["label"] for f in early["fields"]}["ladder"] == "site since 2025-01-01"

    run("bill", "--period", "2026-01", "--date", "2026-01-01")  # due 2026-01-11, never paid
    for offset in range(1, 16):
        run("daily", "--date", (date(2026, 1, 11) + timedelta(days=offset)).isoformat())
    sessions = open_registry(registry_url)
    with sessions() as s:
        handed = {
            e.invoice_id: (e.step, e.happened_on)
            for e in s.scalars(
                select(CollectionEvent).where(CollectionEvent.action == "legal_handover")
            )
        }
        cases = sorted(
            (t.lease_id, t.opened_on)
            for t in s.scalars(select(LeaseTask).where(LeaseTask.kind == "legal_case"))
        )
        escalations = s.scalars(
            select(CollectionEvent).where(CollectionEvent.action == "escalation")
        ).all()
        audit = [
            (e.subject, e.actor, json.loads(e.detail)["from"])
            for e in s.scalars(select(AuditEntry))
            if e.action == "policy_create"
        ]
    sessions.kw["bind"].dispose()
    assert handed == {
        "L1/2026-01": (14, date(2026, 1, 25)),
        "L2/2026-01": (15, date(2026, 1, 26)),
    }
    assert cases == [("L1", date(2026, 1, 25)), ("L2", date(2026, 1, 26))]
    assert escalations == []
    assert [(actor, origin) for _, actor, origin in audit] == [("sup", "cli")] * 2
    assert all(subject.startswith("policy:") for subject, _, _ in audit)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            POLICIES + "  - {site: S1, property_type: retail, from: 2025-01-01, preset: huge}\n",
            "item 3: preset 'huge'",
        ),
        (
            POLICIES
            + "  - site: S1\n    from: 2025-02-01\n    fields:\n      ladder:\n"
            + "        - {days: 7, action: reminder}\n        - {days: 3, action: call_task}\n",
            "item 3: fields: ladder: days must increase strictly",
        ),
        (
            POLICIES
            + "  - {site: S1, from: 2025-03-01, fields: {ladder: [{days: 1, action: sue}]}}\n",
            "item 3: fields.ladder.0.action",
        ),
        (
            "policies:\n  - site: S1\n    site: S2\n    from: 2025-01-01\n    preset: short\n",
            "key 'site' appears twice",
        ),
        (POLICIES + "  - {site: S9, from: 2025-01-01, preset: short}\n", "item 3: site 'S9'"),
        (POLICIES + "  - {site: S1, from: 2025-01-01, preset: short}\n", "item 3: S1/all"),
        ("policies:\n  - {site: S1, from: 2025-01-01}\n", "give a preset or at least one"),
    ],
)
def test_a_file_with_an_error_is_refused_whole(
    registry_url: str, tmp_path: Path, text: str, expected: str
) -> None:
    code, out, err = invoke("policy", "import", write(tmp_path, text))
    assert code == 2, out
    assert expected in err and "Traceback" not in err
    assert stored(registry_url) == []


def test_show_refuses_an_unknown_lease(registry_url: str) -> None:
    code, _, err = invoke("policy", "show", "--lease", "L9")
    assert code == 2 and "L9" in err
