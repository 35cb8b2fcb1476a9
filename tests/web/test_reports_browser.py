"""The report pages in a real browser (Debian Chromium, headless, under Playwright), desktop
and phone, Chinese and English: finance opens the reports from the navigation, filters the
occupancy report to a building, sees the chart (an SVG with an accessible name) and the
table say the same, and downloads the Excel export, which opens with the same figures; a
manager's aging page has no amounts. axe-core finds nothing serious or critical.
Screenshots and axe reports go to ``test-artifacts/web/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import openpyxl
import pytest

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
from tests.support.report_portfolio import seed_report_portfolio

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("report-pages"), months=1)
    seed_report_portfolio(rig.sessions, PASSWORD)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


@pytest.mark.parametrize(("kind", "lang"), [("desktop", "en"), ("phone", "zh-CN")])
def test_finance_filters_occupancy_and_exports_it(
    browser: Any, base_url: str, tmp_path: Any, kind: str, lang: str
) -> None:
    ctx = (desktop if kind == "desktop" else phone)(browser)
    ctx.set_default_timeout(20_000)
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a", lang)
    assert page.locator("header nav a[href^='/reports']").count() == 1
    page.goto(f"{base_url}/reports?lang={lang}")
    names = {"en": "Occupancy", "zh-CN": "出租率"}
    assert_accessible(page, f"reports-index-{kind}-{lang}")
    page.get_by_role("link", name=names[lang], exact=True).click()
    page.wait_for_url(re.compile("/reports/occupancy"))
    form = page.locator("[data-testid=report-filters]")
    form.locator("input[name=building]").fill("A")
    form.locator("input[name=day]").fill("2026-04-30")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile("building=A"))
    chart = page.get_by_role("img", name=re.compile("Occupancy|出租率"))
    assert chart.count() == 1
    rows = page.locator("[data-testid=report-table] tbody tr")
    total = rows.nth(0).locator("td").all_inner_texts()
    # park-a building A on 2026-04-30: four rentable units, all occupied
    assert total[5:8] == ["4", "4", "100.00 %"]
    assert "100.00 %" in chart.inner_html()
    assert_accessible(page, f"report-occupancy-{kind}-{lang}")
    screenshot(page, f"report-occupancy-{kind}-{lang}")
    with page.expect_download() as got:
        page.locator("[data-testid=export-xlsx]").click()
    path = tmp_path / "occupancy.xlsx"
    got.value.save_as(path)
    sheet = openpyxl.load_workbook(path).active
    assert [c.value for c in sheet[2]][5:8] == [4, 4, 1]
    ctx.close()


def test_a_managers_aging_page_has_no_amounts(browser: Any, base_url: str) -> None:
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-a", "en")
    page.goto(f"{base_url}/reports/aging?day=2026-06-20&lang=en")
    head = page.locator("[data-testid=report-table] thead th").all_inner_texts()
    assert head[:3] == ["Site", "Building", "Invoices 0-30"] and not any("CNY" in h for h in head)
    assert page.get_by_role("img", name="Overdue invoices by days past due").count() == 1
    assert_accessible(page, "report-aging-manager-desktop-en")
    screenshot(page, "report-aging-manager-desktop-en")
    ctx.close()


def test_an_admin_sets_who_receives_the_monthly_mail(
    browser: Any, rig: WebRig, base_url: str
) -> None:
    """月报收件人 on the reports page: an admin adds an English recipient, sees it listed in
    its language, is told a bad address, removes it; finance sees no such section."""
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "admin", "zh-CN")
    page.goto(f"{base_url}/reports?lang=zh-CN")
    form = page.locator("[data-testid=recipients-add]")
    form.locator("input[name=site]").fill("park-a")
    form.locator("input[name=add]").fill("CFO@Reports.test")
    form.locator("select[name=language]").select_option("en")
    form.locator("button[type=submit]").click()
    assert page.locator("[data-testid=recipients-done]").count() == 1
    row = page.locator("[data-testid=recipients-table] tr[data-address='cfo@reports.test']")
    assert "park-a" in row.inner_text() and "English" in row.inner_text()
    stored = rig.web.report_recipients.by_site("park-a")
    assert stored == {"park-a": {"cfo@reports.test": "en"}}
    assert_accessible(page, "reports-recipients-admin")
    form = page.locator("[data-testid=recipients-add]")
    form.locator("input[name=site]").fill("park-z")
    form.locator("input[name=add]").fill("ops@reports.test")
    form.locator("button[type=submit]").click()
    assert "not registered" in page.locator("[data-testid=recipients-error]").inner_text()
    row = page.locator("[data-testid=recipients-table] tr[data-address='cfo@reports.test']")
    row.locator("button").click()
    assert page.locator("[data-testid=recipients-table] tr[data-address]").count() == 0
    ctx.close()
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a", "en")
    page.goto(f"{base_url}/reports?lang=en")
    assert page.locator("[data-testid=reports]").count() == 1
    assert page.locator("[data-testid=report-recipients]").count() == 0
    ctx.close()
