"""The ledger import page in a real browser (Debian Chromium, headless, under Playwright): a
manager imports a 200-lease ledger from the Excel template — a bad row is reported with its
cells (sheet, row, column, what was expected) and nothing is stored until it is fixed; then
the clean file is checked and imported. On a lease's page the manager signs a draft and the
termination asks for its confirmation. axe-core finds nothing serious or critical on these
pages. Screenshots and axe reports go to ``test-artifacts/web/``."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from cloud.leases.ledger_columns import LEASES_SHEET
from cloud.leases.models import Lease
from cloud.staff.accounts import Role
from tests.support.axe import assert_accessible
from tests.support.browser import PASSWORD, WebRig, desktop, make_rig, screenshot, serve, sign_in
from tests.support.lease_scope import seed_leases
from tests.support.ledger_book import seed_ledger_site, write_ledger

pytestmark = pytest.mark.timeout(300)
SITE = "park-a"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("ledger-page"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    seed_ledger_site(rig.sessions, SITE, building="L")
    rig.web.accounts.create_account("mgr-l", PASSWORD, Role.MANAGER, [], buildings=["park-a/L"])
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def stored(rig: WebRig) -> int:
    with rig.sessions() as s:
        return int(
            s.scalar(select(func.count()).select_from(Lease).where(Lease.id.like("park-a-L-%")))
            or 0
        )


def broken(path: Path) -> Path:
    """The workbook with row 7's start date impossible and row 8 naming another building's unit."""
    wb = load_workbook(path)
    ws = wb[LEASES_SHEET]
    columns = {str(c.value).split("\n")[-1]: c.column for c in ws[1]}
    ws.cell(row=7, column=columns["Start"], value="2026-13-01")
    ws.cell(row=8, column=columns["Unit id"], value="PA-A101")
    out = path.with_name("broken.xlsx")
    buffer = io.BytesIO()
    wb.save(buffer)
    out.write_bytes(buffer.getvalue())
    return out


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_manager_imports_a_200_lease_ledger_a_bad_row_first(
    rig: WebRig, base_url: str, browser: Any, tmp_path: Path, lang: str
) -> None:
    good = write_ledger(tmp_path / "ledger.xlsx", SITE, 200).path
    bad = broken(good)
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-l", lang)
    page.goto(f"{base_url}/leases/import?lang={lang}")
    assert_accessible(page, f"ledger-import-{lang}")
    page.get_by_test_id("ledger-file").set_input_files(str(bad))
    page.get_by_test_id("ledger-check").click()
    page.wait_for_selector("[data-testid=ledger-issues]")
    cells = [
        [c.inner_text() for c in row.locator("td").all()]
        for row in page.locator("[data-testid=ledger-issues] tbody tr").all()
    ]
    assert [LEASES_SHEET, "7", "开始日期/start_on"] in [c[:3] for c in cells], cells
    # the problem in the reader's language
    outside = "不在您负责的楼栋内" if lang == "zh-CN" else "outside your buildings"
    not_a_date = "不是日期（YYYY-MM-DD）" if lang == "zh-CN" else "is not a date (YYYY-MM-DD)"
    assert any(c[:3] == [LEASES_SHEET, "8", "单元编号/unit"] and outside in c[3] for c in cells)
    assert any(
        c[:3] == [LEASES_SHEET, "7", "开始日期/start_on"] and not_a_date in c[3] for c in cells
    )
    assert "2026-13-01" in page.get_by_test_id("ledger-issues").inner_text()
    assert page.get_by_test_id("ledger-import").count() == 0, "no import offered for a bad file"
    screenshot(page, f"ledger-import-refused-{lang}")
    assert_accessible(page, f"ledger-import-refused-{lang}")
    # importing the bad file directly is refused alike: nothing stored
    page.get_by_test_id("ledger-file").set_input_files(str(bad))
    page.get_by_test_id("ledger-import-direct").click()
    page.wait_for_selector("[data-testid=ledger-refused]")
    if lang == "zh-CN":
        assert stored(rig) == 0
    # fixed: checked clean, then imported with the page's button
    page.get_by_test_id("ledger-file").set_input_files(str(good))
    page.get_by_test_id("ledger-check").click()
    page.wait_for_selector("[data-testid=ledger-summary]")
    created = "200" if lang == "zh-CN" else "0"
    assert page.get_by_test_id("ledger-created").inner_text() == created
    if lang == "zh-CN":
        assert stored(rig) == 0, "a check stores nothing"
    assert_accessible(page, f"ledger-import-clean-{lang}")
    page.get_by_test_id("ledger-import").click()
    page.wait_for_selector("[data-testid=ledger-summary]")
    assert page.get_by_test_id("ledger-created").inner_text() == created
    assert stored(rig) == 200
    if lang == "en":
        assert page.get_by_test_id("ledger-unchanged").inner_text() == "200"
        assert "Imported." in page.get_by_test_id("ledger-summary").inner_text()
    screenshot(page, f"ledger-imported-{lang}")
    ctx.close()


def test_a_manager_signs_a_draft_and_termination_asks_first(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    assert stored(rig) == 200  # the ledger the import test stored
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-l", "en")
    draft = "park-a-L-L0004"
    page.goto(f"{base_url}/leases/{draft}?lang=en")
    assert_accessible(page, "lease-operations-draft")
    page.locator("[data-testid=op-sign] select[name=how]").select_option("e-sign")
    page.locator("[data-testid=op-sign] button[type=submit]").click()
    page.wait_for_selector("[data-testid=lease-done]")
    assert "Signed." in page.get_by_test_id("lease-done").inner_text()
    assert "Signed" in page.get_by_test_id("lease").inner_text()
    # signed: hand over or terminate; the termination is not sent without its box ticked
    form = page.get_by_test_id("op-terminate")
    form.locator("input[name=reason]").fill("tenant withdrew")
    form.locator("button[type=submit]").click()
    assert page.locator("input[name=confirm]:invalid").count() == 1
    with rig.sessions() as s:
        assert s.get(Lease, draft).status == "signed"
    form.locator("input[name=confirm]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-testid=lease-done]")
    with rig.sessions() as s:
        assert s.get(Lease, draft).status == "terminated"
    assert_accessible(page, "lease-operations-terminated")
    screenshot(page, "lease-operations")
    ctx.close()
