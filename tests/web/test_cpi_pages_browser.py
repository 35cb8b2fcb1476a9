"""Finance keeps the CPI series on ``/cpi`` in a real browser (Debian Chromium, headless,
under Playwright), Chinese on a desktop and English on a phone: the lease waiting for a
month is shown by its tenant's name with the month it needs; the month entered on the form
as NBS publishes it (上年同月=100) takes the lease off the list; a CSV with a bad row is
refused naming the row and column, nothing stored; the nav leads there for finance only.
axe-core finds nothing serious or critical. Screenshots go to ``test-artifacts/web/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.axe import assert_accessible
from tests.support.browser import (
    WebRig,
    desktop,
    phone,
    screenshot,
    serve,
    sign_in,
)
from tests.support.cpi_samples import (
    CPI_LEASE,
    CPI_TENANT,
    cpi_months_stored,
    cpi_rig,
)

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = cpi_rig(tmp_path_factory.mktemp("cpi-pages"))
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def stored(rig: WebRig) -> int:
    return cpi_months_stored(rig.sessions)


def test_finance_enters_the_month_a_lease_waits_for_and_a_bad_file_is_refused(
    browser: Any, rig: WebRig, base_url: str, tmp_path: Path
) -> None:
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a", "zh-CN")
    page.locator("nav a", has_text="CPI 指数").click()
    page.wait_for_selector("[data-testid=cpi-waiting]")
    row = page.locator(f"[data-testid=cpi-waiting] tr[data-lease={CPI_LEASE}]")
    assert CPI_TENANT in row.inner_text() and "2025-12" in row.inner_text()
    assert "2026-01-01" in row.inner_text()
    assert_accessible(page, "cpi-zh")
    form = page.locator("[data-testid=cpi-set]")
    form.get_by_label("月份", exact=True).fill("2025-12")
    form.locator("select[name=basis]").select_option(label="上年同月=100")
    form.get_by_label("指数", exact=True).fill("102.37")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("p.notice")
    series = page.locator("[data-testid=cpi-series] tr[data-month='2025-12']")
    assert "上年同月=100" in series.inner_text() and "102.37" in series.inner_text()
    # known now until the next January, which waits for December 2026
    row = page.locator(f"[data-testid=cpi-waiting] tr[data-lease={CPI_LEASE}]")
    assert "2027-01-01" in row.inner_text() and "2026-12" in row.inner_text()
    screenshot(page, "cpi-zh")
    ctx.close()
    assert stored(rig) == 1

    bad = tmp_path / "cpi.csv"
    bad.write_text("month,basis,value\n2025-10,yoy,100.3\n2025-11,yoy,abc\n", encoding="utf-8")
    ctx = phone(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a", "en")
    page.goto(f"{base_url}/cpi?lang=en")
    upload = page.locator("[data-testid=cpi-upload]")
    upload.locator("input[type=file]").set_input_files(str(bad))
    upload.locator("button[type=submit]").click()
    page.wait_for_selector("[data-testid=cpi-error]")
    error = page.locator("[data-testid=cpi-error]").inner_text()
    assert "Not stored" in error and "row 3, column value" in error
    assert_accessible(page, "cpi-refused-en")
    screenshot(page, "cpi-refused-en")
    ctx.close()
    assert stored(rig) == 1


def test_the_nav_leads_to_cpi_for_finance_only(browser: Any, base_url: str) -> None:
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-a", "en")
    page.goto(f"{base_url}/leases?lang=en")
    assert page.locator("nav a[href^='/cpi']").count() == 0
    reply = page.goto(f"{base_url}/cpi?lang=en")
    assert reply is not None and reply.status == 403
    ctx.close()
