"""The work queue and renewal offers in a real browser (Debian Chromium, headless, under
Playwright): the manager of building A sees their renewal reminders with an SLA label beside
the colour and acknowledges one with one click; makes an offer outside the band from the
lease page, which shows the suggestion, the band and the comparable leases; the supervisor
approves it on the offers page, which draws the funnel. axe-core finds nothing serious or
critical on these pages, in Chinese and English, on a phone and a desktop."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from cloud.leases.jobs import run_daily
from cloud.leases.models import RenewalOffer, RenewalReminder
from cloud.staff.accounts import AccountService, Role
from tests.support.axe import assert_accessible
from tests.support.browser import (
    PASSWORD,
    WebRig,
    desktop,
    make_rig,
    phone,
    screenshot,
    serve,
    sign_in,
)
from tests.support.lease_scope import seed_leases

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("queue-pages"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    accounts = AccountService(rig.sessions)
    accounts.create_account("mgr-a", PASSWORD, Role.MANAGER, buildings=["park-a/A"], staff_id="m-a")
    accounts.create_account("sup-a", PASSWORD, Role.SUPERVISOR, ["park-a"], staff_id="boss")
    run_daily(rig.sessions, date(2026, 10, 3), channels={})  # the 90-day reminders
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def test_the_manager_acknowledges_with_one_click_and_the_supervisor_approves(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-a", "zh-CN")
    page.goto(f"{base_url}/queue")
    rows = page.locator("[data-testid=queue] tbody tr[data-item^='reminder:']")
    assert sorted(r.get_attribute("data-item") for r in rows.all()) == [
        "reminder:L-A1:90",
        "reminder:L-A2:90",
    ]
    row = page.locator("tr[data-item='reminder:L-A1:90']")
    # acknowledged within 7 days of 2026-10-03: overdue by now, said in words, not only colour
    assert row.get_attribute("data-sla") == "red"
    assert row.locator(".badge.sla-red").inner_text() == "已逾期"
    assert "到期前 90 天的续签提醒" in row.inner_text()  # the note in the reader's language
    assert_accessible(page, "queue-manager-zh")
    screenshot(page, "queue-manager-zh")
    row.get_by_role("button", name=re.compile("确认")).click()
    page.wait_for_url(re.compile(r"/queue\?"))
    assert "已处理" in page.locator("[role=status]").inner_text()
    assert page.locator("tr[data-item='reminder:L-A1:90']").count() == 0
    with rig.sessions() as s:
        acked = s.scalar(
            select(RenewalReminder.acknowledged_by).where(
                RenewalReminder.lease_id == "L-A1", RenewalReminder.kind == "reminder"
            )
        )
    assert acked == "mgr-a"

    # the lease page: suggestion, band, comparables, and the offer form
    page.goto(f"{base_url}/leases/L-A2?lang=en")
    section = page.locator("[data-testid=renewal-offer]")
    assert section.locator(".band").inner_text() == "¥5150.00 – ¥5250.00"
    assert section.locator(".suggested").inner_text() == "¥5200.00"
    assert section.locator("table.comparables tbody tr").count() == 2
    assert_accessible(page, "lease-offer-en")
    section.get_by_label("Rent offered").fill("6000.00")
    section.get_by_role("button", name="Make offer").click()
    page.wait_for_url(re.compile(r"offer=\d+"))
    assert "Awaiting a supervisor" in page.locator(".offers-of-lease").inner_text()
    with rig.sessions() as s:
        offer = s.scalars(select(RenewalOffer).where(RenewalOffer.lease_id == "L-A2")).one()
    assert (offer.offered_cents, offer.approval, offer.by) == (600_000, "pending", "mgr-a")
    # the manager has no approve button for it
    page.goto(f"{base_url}/offers?lang=en")
    mine = page.locator(f"tr[data-offer='{offer.id}']")
    assert mine.get_by_role("button", name=re.compile("Approve")).count() == 0
    ctx.close()

    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "sup-a", "en")
    page.goto(f"{base_url}/queue?lang=en")
    assert page.locator(f"tr[data-item='approval:{offer.id}']").count() == 1
    page.goto(f"{base_url}/offers?lang=en")
    assert page.locator("svg.funnel").count() == 1
    assert page.locator("[data-testid=funnel] td[data-state=pending]").inner_text() == "1"
    assert_accessible(page, "offers-supervisor-en")
    row = page.locator(f"tr[data-offer='{offer.id}']")
    row.get_by_role("button", name=re.compile("^Approve")).click()
    page.wait_for_url(re.compile(r"/offers\?"))
    row = page.locator(f"tr[data-offer='{offer.id}']")
    assert row.locator(".offer-approval").inner_text() == "Approved · sup-a"
    screenshot(page, "offers-supervisor-en")
    page.goto(f"{base_url}/queue/overdue?lang=en")
    assert page.locator("tr[data-item='reminder:L-B1:90'] .badge").inner_text() == "Overdue"
    note = page.locator("tr[data-item='reminder:L-B1:90']").inner_text()
    assert "renewal 90 days before the lease ends on" in note
    assert_accessible(page, "queue-overdue-en")
    ctx.close()
    with rig.sessions() as s:
        assert s.get(RenewalOffer, offer.id).decided_by == "sup-a"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_queue_pages_on_a_phone_are_accessible(base_url: str, browser: Any, lang: str) -> None:
    ctx = phone(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "sup-a", lang)
    for path in ("/queue", "/queue/overdue", "/offers", "/leases/L-B1"):
        reply = page.goto(f"{base_url}{path}?lang={lang}")
        assert reply is not None and reply.status == 200, path
        assert_accessible(page, f"queue-phone-{lang}-{path.strip('/').replace('/', '-')}")
    ctx.close()


def test_a_task_note_reads_in_the_pages_language(base_url: str, browser: Any) -> None:
    """The legal case the daily run opened for L-A1's unpaid February invoice: its note was
    stored as a code and its values, and the queue words it in the reader's language."""
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "sup-a", "zh-CN")
    page.goto(f"{base_url}/queue")
    case = page.locator("tr[data-item^='task:']", has_text="L-A1/2026-02")
    assert case.count() == 1
    zh = case.inner_text()
    assert "欠款" in zh and " 元，" in zh and "CNY" not in zh and "owed" not in zh
    page.goto(f"{base_url}/queue?lang=en")
    en = page.locator("tr[data-item^='task:']", has_text="L-A1/2026-02").inner_text()
    assert "CNY owed, due" in en and "欠款" not in en
    ctx.close()
