"""``meterflow cloud bill`` and ``meterflow cloud daily`` as commands (typer, the registry
from MF_DB_URL): one JSON line each, idempotent, e-mail and webhooks configured by options."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cloud.registry.db import open_registry
from meterflow.cli.leases import cloud_bill, cloud_daily
from tests.support.leases_portfolio import UnitSpec, running_lease, seed_site, terms
from tests.support.smtp_http_receivers import (
    WEBHOOK_SECRET,
    HttpReceiver,
    SmtpReceiver,
)

app = typer.Typer()
app.command("bill")(cloud_bill)
app.command("daily")(cloud_daily)


@pytest.fixture()
def registry_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    monkeypatch.setenv("MF_DB_URL", url)
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path))
    sessions = open_registry(url)
    with sessions.begin() as s:
        seed_site(s, [UnitSpec("A101"), UnitSpec("A102")], tenants=2)
        running_lease(s, terms("L1", "A101", "T1", date(2025, 4, 1), date(2026, 4, 1)))
        running_lease(s, terms("L2", "A102", "T2", date(2025, 9, 1), date(2026, 9, 1)))
    sessions.kw["bind"].dispose()
    return url


def run(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_bill_twice_bills_once(registry_url: str) -> None:
    first = run("bill", "--period", "2026-01", "--date", "2026-01-01")
    again = run("bill", "--period", "2026-01", "--date", "2026-01-02")
    assert (first["invoices"], first["rent_cents"]) == (2, 1_000_000)
    assert (again["invoices"], again["already_billed"]) == (0, 2)


def test_daily_twice_sends_once(
    registry_url: str,
    smtp_receiver: SmtpReceiver,
    http_receiver: HttpReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MF_WEBHOOK_SECRET", WEBHOOK_SECRET.decode())
    run("bill", "--period", "2026-01", "--date", "2026-01-01")
    options = [
        "--date",
        "2026-01-12",
        "--smtp-host",
        smtp_receiver.host,
        "--smtp-port",
        str(smtp_receiver.port),
        "--webhook",
        f"sms={http_receiver.url}",
    ]
    first = run("daily", *options)
    again = run("daily", *options)
    assert first["channels"] == ["email", "sms"]
    # L1 ends 2026-04-01: the 90-day reminder; both January invoices: T+1 reminders
    assert (first["reminders"], first["collection_events"], first["delivered"]) == (1, 2, 3)
    assert (again["reminders"], again["collection_events"], again["delivered"]) == (0, 0, 0)
    assert len(smtp_receiver.messages) == 3 and http_receiver.deliveries == []


def test_bad_input_is_refused_with_what_was_expected(registry_url: str) -> None:
    result = CliRunner().invoke(app, ["bill", "--period", "2026-1"])
    assert result.exit_code == 2 and "expected YYYY-MM" in result.output
    result = CliRunner().invoke(app, ["daily", "--webhook", "sms"])
    assert result.exit_code == 2 and "expected NAME=URL" in result.output
