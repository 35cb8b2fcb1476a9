"""Lease operations as one story in a real browser (Debian Chromium, headless, Playwright;
issue #18): a manager imports a 200-lease ledger from the Excel template — a bad row is
reported with its cells and nothing is stored until it is fixed — and, once the months are
billed (``meterflow cloud bill``), records payments by importing a bank statement (a matched
and an unmatched line); the daily run (``meterflow cloud daily``) climbs the collections
ladder for what is still owed; the manager works the queue; a supervisor approves the
manager's out-of-band renewal offer and sees the overdue items; legal sees the cases handed
over at T+15. Each outcome is checked on the page and in the database; axe-core finds nothing
serious or critical on the pages."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from typer.testing import CliRunner

from cloud.leases.ledger_columns import LEASES_SHEET
from cloud.leases.models import (
    CollectionEvent,
    Invoice,
    Lease,
    LeaseTask,
    Payment,
    RenewalOffer,
)
from cloud.leases.periods import add_months
from cloud.staff.accounts import Role
from meterflow.cli import app
from meterflow.scenarios.bank_statement import BankTransfer, write_bank_statement
from tests.support.axe import assert_accessible
from tests.support.browser import PASSWORD, WebRig, desktop, make_rig, screenshot, serve, sign_in
from tests.support.ledger_book import seed_ledger_site, write_ledger

pytestmark = pytest.mark.timeout(600)
SITE = "park-a"
TODAY = date.today()
START = add_months(date(TODAY.year, TODAY.month, 1), -3)  # the ledger's first leases begin


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("lease-story"), months=1)
    seed_ledger_site(rig.sessions, SITE, units=250, building="L", manager="mgr-l")
    rig.cli_env = {  # type: ignore[attr-defined]
        "MF_DB_URL": str(rig.sessions.kw["bind"].url),
        "MF_DATA_DIR": str(tmp_path_factory.mktemp("lease-story-data")),
    }
    cli(rig, "staff", "set", "sup-l", "--name", "周主管", "--address", "sup-l@staff.test")
    cli(rig, "staff", "set", "mgr-l", "--name", "台账管家", "--supervisor", "sup-l")
    accounts = rig.web.accounts
    accounts.create_account("mgr-l", PASSWORD, Role.MANAGER, [], buildings=["park-a/L"])
    accounts.create_account("sup-l", PASSWORD, Role.SUPERVISOR, ["park-a"])
    accounts.create_account("legal-l", PASSWORD, Role.LEGAL, ["park-a"])
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def cli(rig: WebRig, *args: str) -> str:
    """``meterflow cloud …`` on the rig's registry; it must succeed."""
    result = CliRunner().invoke(app, ["cloud", *args], env=rig.cli_env)  # type: ignore[attr-defined]
    assert result.exit_code == 0, (args, result.output)
    return result.output


def count(rig: WebRig, query: Any) -> int:
    with rig.sessions() as s:
        return int(s.scalar(query) or 0)


def broken(path: Path) -> Path:
    """The workbook with row 7's start date impossible."""
    wb = load_workbook(path)
    ws = wb[LEASES_SHEET]
    columns = {str(c.value).split("\n")[-1]: c.column for c in ws[1]}
    ws.cell(row=7, column=columns["Start"], value="2026-13-01")
    out = path.with_name("broken.xlsx")
    buffer = io.BytesIO()
    wb.save(buffer)
    out.write_bytes(buffer.getvalue())
    return out


def test_a_manager_supervisor_and_legal_run_the_leases_from_their_pages(
    rig: WebRig, base_url: str, browser: Any, tmp_path: Path
) -> None:
    leases = select(func.count()).select_from(Lease).where(Lease.id.like("park-a-L-%"))
    # 1. the manager imports the ledger: the bad row first, nothing stored; then the good file
    good = write_ledger(tmp_path / "ledger.xlsx", SITE, 200, manager="mgr-l", start=START).path
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-l")
    page.goto(f"{base_url}/leases/import")
    page.get_by_test_id("ledger-file").set_input_files(str(broken(good)))
    page.get_by_test_id("ledger-check").click()
    page.wait_for_selector("[data-testid=ledger-issues]")
    issues = page.get_by_test_id("ledger-issues").inner_text()
    assert "开始日期/start_on" in issues and "2026-13-01" in issues
    assert page.get_by_test_id("ledger-import").count() == 0
    assert count(rig, leases) == 0
    page.get_by_test_id("ledger-file").set_input_files(str(good))
    page.get_by_test_id("ledger-check").click()
    page.wait_for_selector("[data-testid=ledger-import]")
    page.get_by_test_id("ledger-import").click()
    page.wait_for_selector("[data-testid=ledger-summary]")
    assert page.get_by_test_id("ledger-created").inner_text() == "200"
    assert count(rig, leases) == 200
    screenshot(page, "story-ledger-imported")

    # 2. three months billed; the manager imports the bank statement: one tenant's rent by
    #    its lease id (matched), one transfer nobody can place (unmatched)
    for months_back in (3, 2, 1):
        period = add_months(date(TODAY.year, TODAY.month, 1), -months_back)
        cli(rig, "bill", "--period", f"{period:%Y-%m}", "--date", period.isoformat())
    with rig.sessions() as s:
        first = s.scalars(
            select(Invoice)
            .where(Invoice.lease_id == "park-a-L-L0000", Invoice.status == "open")
            .order_by(Invoice.due_on)
        ).first()
    assert first is not None
    lines = [
        BankTransfer(
            first.due_on - timedelta(days=1),
            first.total_cents,
            "租户0000",
            "",
            "房租 park-a-L-L0000",
            "S-1",
        ),
        BankTransfer(TODAY, 4_200, "陌生人", "", "转账", "S-2"),
    ]
    statement = write_bank_statement(tmp_path / "statement.csv", lines, encoding="gb18030")
    page.goto(f"{base_url}/payments/bank")
    page.locator("input[type=file][name=file]").set_input_files(str(statement))
    page.locator("form[enctype='multipart/form-data'] button[type=submit]").click()
    page.wait_for_selector("[data-testid=bank-result]")
    result = page.locator("[data-testid=bank-result]")
    assert result.locator("[data-count=matched]").inner_text() == "1"
    assert result.locator("[data-count=unmatched]").inner_text() == "1"
    assert "park-a-L-L0000" in result.locator("tr[data-status=matched]").inner_text()
    assert_accessible(page, "story-bank-result")
    with rig.sessions() as s:
        assert s.get(Invoice, first.id).status == "paid"
        assert s.scalar(select(func.count()).select_from(Payment)) == 1

    # 3. the daily run (three weeks ago and today) climbs the ladder for what is still owed,
    #    never for the invoice paid before its due date
    cli(rig, "daily", "--date", (TODAY - timedelta(days=21)).isoformat())
    cli(rig, "daily", "--date", TODAY.isoformat())
    with rig.sessions() as s:
        handed = s.scalars(
            select(CollectionEvent.invoice_id).where(CollectionEvent.action == "legal_handover")
        ).all()
        dunned = set(s.scalars(select(CollectionEvent.invoice_id)))
    assert handed and first.id not in dunned

    # 4. the manager works the queue: a task done with one click
    page.goto(f"{base_url}/queue")
    task = page.locator("[data-testid=queue] tbody tr[data-item^='task:']").first
    item = task.get_attribute("data-item")
    assert item is not None
    assert_accessible(page, "story-queue-manager")
    task.get_by_role("button").first.click()
    page.wait_for_url(re.compile(r"/queue\?"))
    assert page.locator(f"tr[data-item='{item}']").count() == 0
    with rig.sessions() as s:
        assert s.get(LeaseTask, int(item.split(":")[1])).closed_on is not None

    # 5. the manager offers a running lease a renewal far above its band
    with rig.sessions() as s:
        running = s.scalars(
            select(Lease.id)
            .where(Lease.id.like("park-a-L-%"), Lease.status == "active")
            .where(Lease.id.not_in(select(Invoice.lease_id).where(Invoice.status == "open")))
            .order_by(Lease.id)
        ).first()
    assert running is not None
    page.goto(f"{base_url}/leases/{running}?lang=en")
    offer_form = page.locator("[data-testid=renewal-offer]")
    offer_form.get_by_label("Rent offered").fill("99999.00")
    offer_form.get_by_role("button", name="Make offer").click()
    page.wait_for_url(re.compile(r"offer=\d+"))
    assert "Awaiting a supervisor" in page.locator(".offers-of-lease").inner_text()
    with rig.sessions() as s:
        offer = s.scalars(select(RenewalOffer).where(RenewalOffer.lease_id == running)).one()
    assert offer.approval == "pending"
    ctx.close()

    # 6. the supervisor approves it and sees the overdue items of the site
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "sup-l", "en")
    page.goto(f"{base_url}/offers?lang=en")
    row = page.locator(f"tr[data-offer='{offer.id}']")
    row.get_by_role("button", name=re.compile("^Approve")).click()
    page.wait_for_url(re.compile(r"/offers\?"))
    assert "Approved · sup-l" in page.locator(f"tr[data-offer='{offer.id}']").inner_text()
    with rig.sessions() as s:
        assert s.get(RenewalOffer, offer.id).approval == "approved"
    page.goto(f"{base_url}/queue/overdue?lang=en")
    overdue = page.locator("[data-testid=queue] tbody tr[data-sla=red]")
    assert overdue.count() > 0
    assert_accessible(page, "story-overdue-supervisor")
    screenshot(page, "story-overdue-supervisor")
    ctx.close()

    # 7. legal sees the cases handed over at T+15
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "legal-l", "en")
    page.goto(f"{base_url}/queue?lang=en")
    cases = page.locator("[data-testid=queue] tbody tr")
    text = cases.all_inner_texts()
    # each a legal case task, its kind worded for the reader
    assert cases.count() > 0 and all("Legal case: invoice" in t for t in text), text
    with rig.sessions() as s:
        legal_tasks = s.scalar(
            select(func.count()).select_from(LeaseTask).where(LeaseTask.kind == "legal_case")
        )
    assert legal_tasks == len(set(handed))
    assert_accessible(page, "story-queue-legal")
    screenshot(page, "story-queue-legal")
    ctx.close()
