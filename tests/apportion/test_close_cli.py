"""The monthly close through its commands only, as finance would run it on the cloud host:
``site import`` (dry run, JSON, idempotent), ``site export``, ``site check``, ``readings
import`` of a manual read, ``close`` (exit 0 draft, 3 held, 2 refused), ``run review/
approve`` by two accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from cloud.apportion.models import ApportionRun, Unit
from cloud.apportion.site import CASE_ONLY
from cloud.registry.db import open_registry
from cloud.series.sqlite import SqliteSeriesStore
from cloud.staff.accounts import AccountService, Role
from meterflow.cli.cloud import cloud_app
from tests.apportion.test_close import midnight, ns

CASES = Path(__file__).parents[1] / "cases"
PASSWORD = "correct horse battery"


@dataclass
class Rig:
    data: Path
    sessions: sessionmaker[Session]
    raw: dict[str, Any]

    def cli(self, *args: str) -> Result:
        env = {
            "MF_DATA_DIR": str(self.data),
            "MF_DB_URL": f"sqlite:///{self.data / 'registry.sqlite'}",
        }
        return CliRunner().invoke(cloud_app, list(args), env=env)

    def count(self, model: type) -> int:
        with self.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[Rig]:
    data = tmp_path / "cloud"
    data.mkdir()
    sessions = open_registry(f"sqlite:///{data / 'registry.sqlite'}")
    accounts = AccountService(sessions)
    for name, role in (("fin-a", Role.FINANCE), ("fin-a2", Role.FINANCE), ("eng-a", Role.ENGINEER)):
        accounts.create_account(name, PASSWORD, role, ["park-a"])
    raw = yaml.safe_load((CASES / "basic.yaml").read_text())
    site = {k: v for k, v in raw.items() if k not in CASE_ONLY}
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site))
    (tmp_path / "bill.yaml").write_text(yaml.safe_dump({"bill": raw["bill"]}))
    # the gateway's readings, except U2's end reading (it arrives by hand below)
    store = SqliteSeriesStore(data / "series.sqlite")
    from cloud.series.base import SeriesPoint

    points = [
        SeriesPoint(
            "park-a",
            meter,
            "energy_import",
            ns(midnight(day)),
            float(v) * (10 if meter == "M0" else 1),
            "good",
            "kWh",
        )
        for meter, series in raw["readings"].items()
        for day, v in series.items()
        if (meter, str(day)) != ("U2", "2026-05-01")
    ]
    store.write(points)
    store.close()
    yield Rig(data, sessions, raw)
    sessions.kw["bind"].dispose()


def test_the_month_closes_through_the_commands(rig: Rig, tmp_path: Path) -> None:
    site, bill = str(tmp_path / "site.yaml"), str(tmp_path / "bill.yaml")
    dry = rig.cli("site", "import", site, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["dry_run"] and rig.count(Unit) == 0
    first = rig.cli("site", "import", site, "--json")
    assert json.loads(first.output)["created"]["unit"] == 3
    again = rig.cli("site", "import", site, "--json")
    assert not json.loads(again.output)["changed"]
    exported = rig.cli("site", "export", "park-a")
    assert exported.exit_code == 0 and "park-a" in exported.output
    assert yaml.safe_load(exported.output)["tree"][0]["id"] == "A101"
    check = rig.cli("site", "check", "park-a", "--json")
    assert check.exit_code == 1  # April's points are older than 35 days; no gateway health yet
    assert json.loads(check.output)["not_read"] == ["C1", "L1", "M0", "U1", "U2", "U3"]

    args = [
        "close",
        "--site",
        "park-a",
        "--from",
        "2026-04-01",
        "--to",
        "2026-05-01",
        "--bill",
        bill,
    ]
    held = rig.cli(*args, "--as", "fin-a", "--json")
    assert held.exit_code == 3, held.output
    doc = json.loads(held.output)
    assert doc["held"] and {"meter": "U2", "day": "2026-05-01"} in doc["missing_readings"]

    # the manual read (人工抄表), then close again: a new version, not held
    csv = tmp_path / "manual.csv"
    csv.write_text(
        "meter,quantity,read_at,value,note\nU2,energy_import,2026-05-01T00:00:00+08:00,450.00,人工抄表\n"
    )
    manual = rig.cli("readings", "import", str(csv), "--as", "fin-a")
    assert manual.exit_code == 0, manual.output
    draft = rig.cli(*args, "--as", "fin-a", "--json")
    assert draft.exit_code == 0, draft.output
    doc = json.loads(draft.output)
    assert (doc["version"], doc["supersedes"]) == (2, json.loads(held.output)["run"])
    assert doc["bill_cents"] == doc["lines_cents"] == 72000

    run = doc["run"]
    assert rig.cli("run", "review", run, "--as", "fin-a").exit_code == 0
    same = rig.cli("run", "approve", run, "--as", "fin-a")
    assert same.exit_code == 2 and "(four eyes)" in same.output
    assert rig.cli("run", "approve", run, "--as", "fin-a2").exit_code == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from", "2026-04-31"], "--from/--to"),
        (["--as", "eng-a"], "engineer role"),
        (["--as", "nobody"], "no staff account"),
        (["--site", "park-z"], "not one of your sites"),
    ],
)
def test_close_refusals_exit_2_with_one_line_and_store_nothing(
    rig: Rig, tmp_path: Path, args: list[str], expected: str
) -> None:
    assert rig.cli("site", "import", str(tmp_path / "site.yaml")).exit_code == 0
    base = {"--site": "park-a", "--from": "2026-04-01", "--to": "2026-05-01", "--as": "fin-a"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [x for kv in base.items() for x in kv]
    out = rig.cli("close", *flat, "--bill", str(tmp_path / "bill.yaml"))
    assert out.exit_code == 2, out.output
    assert expected in out.output and "Traceback" not in out.output
    assert rig.count(ApportionRun) == 0


def test_a_bill_file_with_a_duplicate_key_is_refused(rig: Rig, tmp_path: Path) -> None:
    assert rig.cli("site", "import", str(tmp_path / "site.yaml")).exit_code == 0
    bill = tmp_path / "dup.yaml"
    bill.write_text("bill:\n  invoice: X\n  amounts: {total: 720.00}\n  amounts: {total: 1.00}\n")
    out = rig.cli(
        "close", "--site", "park-a", "--from", "2026-04-01", "--to", "2026-05-01",
        "--bill", str(bill), "--as", "fin-a",
    )  # fmt: skip
    assert out.exit_code == 2 and "appears twice" in out.output
    assert rig.count(ApportionRun) == 0


def test_site_check_names_unread_tree_meters_and_stray_meters(rig: Rig, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cloud.gateways.models import GatewayStatus
    from cloud.registry.service import register_gateway

    assert rig.cli("site", "import", str(tmp_path / "site.yaml")).exit_code == 0
    with rig.sessions.begin() as s:  # the gateway's latest signed health lists what it reads
        register_gateway(s, "park-a", "gw-1", Ed25519PrivateKey.generate().public_key())
        s.flush()
        listed = ["M0", "U1", "U2", "U3", "C1", "SPARE-9"]
        s.add(
            GatewayStatus(
                gateway_id="gw-1",
                site_id="park-a",
                last_seen=datetime.now(UTC),
                meters=[{"meter": m} for m in listed],
                lines=[],
            )
        )
    out = rig.cli("site", "check", "park-a", "--json")
    assert out.exit_code == 1
    doc = json.loads(out.output)
    assert doc["not_read"] == ["L1"]
    assert doc["not_in_tree"] == [{"meter": "SPARE-9", "gateway": "gw-1"}]
    # The imported site's meters are what ingest accepts: SPARE-9's readings are refused.
    assert (doc["registered_meters"], doc["ownership_checked"]) == (6, True)
    assert doc["refused_as_not_owned"] == ["SPARE-9"]
    text = rig.cli("site", "check", "park-a").output
    assert "read by gateway gw-1, not in the tree: SPARE-9" in text
    assert "reported by gateway gw-1, not registered (meter_not_owned): SPARE-9" in text
