"""A portfolio's year of lease operations run only through the product's commands (issue
#18): the site and the staff registered, the lease ledger filled in from the template and
imported, then every day of the last 365: the monthly bill on the 1st, the tenants' bank
transfers imported from the bank's statement of the day, the daily run (reminders, escalations,
collections), and one manager acknowledging the renewal reminders in their queue while the
other does not. No Python call reaches a service; the database is only read, at the end.

What must hold, for every invoice and event of the year:

- an invoice paid by an imported bank statement before its due date is never dunned;
- every collections step happened to an invoice that was still owed on that day;
- acknowledged reminders never escalate; unacknowledged ones do;
- occupancy at each month end (the report command) is written with the year's dunning
  events and escalations to ``operations-year.json`` in the test's directory.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from cloud.leases.ledger_columns import LEASE_COLUMNS
from meterflow.cli import app

PASSWORD = "operations year secret"
#: where the year's figures go (``test-artifacts/`` is ignored by git; CI can keep it)
ARTIFACTS = (
    Path(os.environ.get("MF_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
    / "leases"
)
SITE = "ops-park"
UNITS = 60  # 30 per building; 54 let, 6 vacant
RENT = 3_000  # yuan a month, + 100 per unit index mod 5


def _units() -> list[dict[str, Any]]:
    out = []
    for i in range(UNITS):
        building = "A" if i % 2 == 0 else "B"
        out.append(
            {
                "id": f"OP-{building}{i:03d}",
                "name": f"{building}座{i:03d}",
                "building": building,
                "floor": str(1 + i // 10),
                "area": 40 + (i % 4) * 10,
            }
        )
    return out


def site_file() -> dict[str, Any]:
    """The site: one main meter over a unit meter per unit, one flat tariff."""
    units = _units()
    return {
        "site": SITE,
        "name": "运营园区",
        "timezone": "Asia/Shanghai",
        "registers": ["total"],
        "units": units,
        "meters": [{"id": "OP-MAIN", "name": "总表"}]
        + [{"id": f"M-{u['id']}", "name": f"{u['name']}电表"} for u in units],
        "tree": [
            {
                "id": "MAIN",
                "kind": "main",
                "meter": "OP-MAIN",
                "name": "总表",
                "rule": {"basis": "usage", "loss_cap": "0.05"},
            }
        ]
        + [
            {"id": u["id"], "kind": "unit", "meter": f"M-{u['id']}", "parent": "MAIN"}
            for u in units
        ],
        "tariffs": [{"id": "flat", "kind": "flat", "from": date(2024, 1, 1), "price": "0.80"}],
    }


def rent_of(i: int) -> int:
    return RENT + 100 * (i % 5)


def payer_kind(i: int) -> str:
    """How the tenant of unit ``i`` pays: ``early`` (two days before the due date), ``late``
    (five days after it) or ``stops`` (pays the first three invoices, then nothing)."""
    return {0: "stops", 3: "late"}.get(i % 10, "early")


def by_header(sheet: Any, values: dict[str, Any]) -> list[Any]:
    """A row of ``sheet`` with ``values`` under the columns of those keys (the template's
    headers read 中文\nEnglish; its columns are found by key, as the import finds them)."""
    keys = {c.key: c for c in LEASE_COLUMNS}
    row = []
    for cell in sheet[1]:
        key = next((k for k, c in keys.items() if c.header == cell.value), None)
        row.append(values.get(key) if key else None)
    return row


def fill_ledger(
    template: Path, out: Path, start: date, last_day: date
) -> dict[str, dict[str, Any]]:
    """The ledger template filled in: a unit profile for every unit, a tenant and an active
    lease for all but every tenth unit, from ``start`` to 20-70 days after ``last_day`` (so
    that the renewal reminders 90, 60 and 30 days before the end fall within the year and
    every lease is billed all year). The leases by id."""
    book = openpyxl.load_workbook(template)
    sheets = {ws.title.split()[0]: ws for ws in book.worksheets}
    leases: dict[str, dict[str, Any]] = {}
    for i, unit in enumerate(_units()):
        sheets["单元"].append([unit["id"], "flat", "residential", "是", rent_of(i)])
        if i % 10 == 9:
            continue  # vacant
        lease_id, tenant = f"OPL-{i:03d}", f"OPT-{i:03d}"
        end = last_day + timedelta(days=20 + 10 * (i % 6))
        manager = "mgr-a" if unit["building"] == "A" else "mgr-b"
        sheets["租户"].append([tenant, f"租户{i:03d}", "email", f"t{i}@tenants.test", None])
        sheets["租约"].append(
            by_header(
                sheets["租约"],
                {
                    "id": lease_id,
                    "tenant": tenant,
                    "unit": unit["id"],
                    "manager": manager,
                    "kind": "standard",
                    "start_on": start.isoformat(),
                    "end_on": end.isoformat(),
                    "rent": rent_of(i),
                    "deposit_months": 1,
                    "cycle": 1,
                    "due_days": 10,
                    "signed_on": start.isoformat(),
                    "handover_on": start.isoformat(),
                    "status": "active",
                },
            )
        )
        leases[lease_id] = {"index": i, "tenant": f"租户{i:03d}", "end": end, "unit": unit}
    book.save(out)
    return leases


class Cli:
    """``meterflow …`` in this process (typer's runner), with the registry's settings."""

    def __init__(self, env: dict[str, str]) -> None:
        self.runner = CliRunner()
        self.env = env
        self.calls = 0

    def __call__(self, *args: str, ok: bool = True) -> str:
        self.calls += 1
        result = self.runner.invoke(app, list(args), env=self.env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, (args, result.output)
        return result.output


def statement(path: Path, lines: list[tuple[date, int, str, str]]) -> None:
    """A bank statement CSV in the bank's own columns (GB18030, as Chinese banks export)."""
    with path.open("w", encoding="gb18030", newline="") as f:
        w = csv.writer(f)
        w.writerow(["交易日期", "贷方金额", "借方金额", "对方户名", "对方账号", "摘要", "流水号"])
        for n, (day, yuan, payer, ref) in enumerate(lines):
            serial = f"{day:%Y%m%d}{n:04d}"
            w.writerow([day.isoformat(), f"{yuan:,.2f}", "", payer, "", ref, serial])


@pytest.mark.timeout(1500)
def test_a_year_of_lease_operations_through_the_commands_only(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    env = {
        "MF_DB_URL": fresh_postgres_url,
        "MF_DATA_DIR": str(tmp_path / "data"),
        "MF_WEB_ACCOUNT_PASSWORD": PASSWORD,
    }
    cli = Cli(env)
    today = date.today()
    first_day = today - timedelta(days=364)  # the year: first_day … today
    # set-up: the site, the staff and their accounts, the ledger from the template
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(site_file(), allow_unicode=True))
    cli("cloud", "site", "import", str(tmp_path / "site.yaml"))
    cli("cloud", "staff", "set", "sup-1", "--name", "周主管", "--address", "sup@staff.test")
    for mgr, name in (("mgr-a", "陈管家"), ("mgr-b", "李管家")):
        cli(
            "cloud",
            "staff",
            "set",
            mgr,
            "--name",
            name,
            "--address",
            f"{mgr}@staff.test",
            "--supervisor",
            "sup-1",
        )
    again = json.loads(
        cli("cloud", "staff", "set", "sup-1", "--name", "周主管", "--address", "sup@staff.test")
    )
    assert again["changed"] is False
    cli("cloud", "web-account", "mgr-a", "--role", "manager", "--building", f"{SITE}/A")
    cli("cloud", "web-account", "mgr-b", "--role", "manager", "--building", f"{SITE}/B")
    cli("cloud", "web-account", "sup-1", "--role", "supervisor", "--site", SITE)
    cli("cloud", "ledger", "template", "--out", str(tmp_path / "template.xlsx"))
    leases = fill_ledger(tmp_path / "template.xlsx", tmp_path / "ledger.xlsx", first_day, today)
    cli("cloud", "ledger", "import", str(tmp_path / "ledger.xlsx"), "--as", "sup-1")
    unchanged = json.loads(
        cli("cloud", "ledger", "import", str(tmp_path / "ledger.xlsx"), "--json", "--as", "sup-1")
    )
    assert unchanged["created"] == [] and unchanged["updated"] == [], unchanged

    # the year, day by day
    paid: dict[str, int] = Counter()  # lease → bank transfers made
    transfers: list[tuple[date, int, str, str]] = []
    due_days: dict[str, list[date]] = defaultdict(list)  # lease → the due dates of its bills
    day = first_day
    while day <= today:
        if day == first_day or day.day == 1:
            cli("cloud", "bill", "--period", f"{day:%Y-%m}", "--date", day.isoformat())
            due = max(day, date(day.year, day.month, 1)) + timedelta(days=10)
            for lease_id in leases:
                due_days[lease_id].append(due)
        for lease_id, info in leases.items():
            kind = payer_kind(info["index"])
            for n, due in enumerate(due_days[lease_id]):
                when = due - timedelta(days=2) if kind == "early" else due + timedelta(days=5)
                if when != day or (kind == "stops" and n >= 3):
                    continue
                transfers.append((day, rent_of(info["index"]), info["tenant"], f"房租 {lease_id}"))
                paid[lease_id] += 1
        if transfers:  # the day's statement, imported before the daily run
            path = tmp_path / f"statement-{day}.csv"
            statement(path, transfers)
            out = json.loads(cli("cloud", "bank", "import", str(path), "--json", "--as", "sup-1"))
            assert out["unmatched"] == 0 and out["matched"] == len(transfers), out
            transfers = []
        cli("cloud", "daily", "--date", day.isoformat())
        if day.weekday() == 6:  # mgr-a works the queue each Sunday, within the 7 days
            cli("cloud", "queue", "ack-reminders", "--due", "--as", "mgr-a")
        day += timedelta(days=1)
    cli("cloud", "queue", "ack-reminders", "--due", "--as", "mgr-a")  # and on the last day

    # what the year did, read from the database
    engine = create_engine(fresh_postgres_url)
    with engine.connect() as db:
        invoices = {
            r.id: r
            for r in db.execute(
                text(
                    "SELECT i.id, i.lease_id, i.due_on, i.total_cents, i.paid_on, u.building "
                    "FROM invoices i JOIN leases l ON l.id = i.lease_id "
                    "JOIN units u ON u.id = l.unit_id"
                )
            )
        }
        events = db.execute(
            text("SELECT invoice_id, step, action, happened_on FROM collection_events")
        ).all()
        allocations = defaultdict(list)
        for invoice_id, cents, on in db.execute(
            text("SELECT invoice_id, cents, allocated_on FROM payment_allocations")
        ):
            allocations[invoice_id].append((on, cents))
        reminders = db.execute(
            text(
                "SELECT r.lease_id, r.kind, r.offset_days, r.acknowledged_at, u.building "
                "FROM renewal_reminders r JOIN leases l ON l.id = r.lease_id "
                "JOIN units u ON u.id = l.unit_id"
            )
        ).all()
        bank = {
            status: n
            for status, n in db.execute(
                text("SELECT status, count(*) FROM bank_lines GROUP BY status")
            )
        }
    engine.dispose()
    assert len(invoices) > 500 and sum(paid.values()) > 400
    assert bank.get("matched") == sum(paid.values()) and not bank.get("unmatched")
    dunned = {e.invoice_id for e in events}
    for inv in invoices.values():
        if inv.paid_on is not None and inv.paid_on <= inv.due_on:
            assert inv.id not in dunned, inv.id  # paid by the bank statement in time
    for e in events:
        owed = invoices[e.invoice_id].total_cents - sum(
            c for on, c in allocations[e.invoice_id] if on <= e.happened_on
        )
        assert owed > 0, e  # only invoices still owed that day
    kinds = Counter(payer_kind(leases[invoices[e.invoice_id].lease_id]["index"]) for e in events)
    assert kinds["stops"] > 0 and kinds["late"] > 0 and kinds["early"] == 0, kinds
    assert {e.action for e in events} >= {
        "reminder",
        "internal_task",
        "call_task",
        "legal_handover",
    }
    # mgr-a (building A) acknowledged every reminder: none escalated; mgr-b's did
    escalations = [r for r in reminders if r.kind == "escalation"]
    sent = [r for r in reminders if r.kind == "reminder" and r.building == "A"]
    assert sent and all(r.acknowledged_at is not None for r in sent)
    assert escalations and {r.building for r in escalations} == {"B"}

    # occupancy at each month end, through the report command
    report = json.loads(
        cli(
            "cloud",
            "report",
            "occupancy",
            "--site",
            SITE,
            "--from",
            first_day.isoformat(),
            "--to",
            today.isoformat(),
            "--json",
        )
    )
    figures = {
        "first_day": first_day.isoformat(),
        "last_day": today.isoformat(),
        "leases": len(leases),
        "invoices": len(invoices),
        "bank_transfers": sum(paid.values()),
        "dunning_events": len(events),
        "dunning_by_step": dict(Counter(str(e.step) for e in events)),
        "dunning_by_payer": dict(kinds),
        "escalations": len(escalations),
        "acknowledged_reminders": len(sent),
        "occupancy_by_month": {
            m["day"]: f"{m['occupied_units']}/{m['rentable_units']}" for m in report["series"]
        },
        "commands_run": cli.calls,
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "operations-year.json").write_text(
        json.dumps(figures, ensure_ascii=False, indent=2, default=str)
    )
    # every month end of the year, and its last day: the 54 leases (signed, first rent paid)
    # of the 60 rentable units
    assert [m["day"] for m in report["series"]][-1] == today.isoformat()
    months = (today.year - first_day.year) * 12 + today.month - first_day.month + 1
    assert len(report["series"]) == months, report["series"]
    assert {(m["occupied_units"], m["rentable_units"]) for m in report["series"]} == {(54, 60)}
