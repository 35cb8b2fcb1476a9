"""A manager records payments by importing a bank statement, in a real browser (Debian
Chromium, headless, under Playwright), Chinese on a desktop and English on a phone: the
upload shows the matched line with its lease and the invoice it settled and the unmatched
line, which the manager assigns to a lease from the queue; then a credit note is requested by
the manager and approved by the supervisor on the credit-notes page. axe-core finds nothing
serious or critical on these pages. Screenshots and axe reports go to ``test-artifacts/web/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud.leases.models import CreditEntry, Invoice
from cloud.leases.periods import local_today
from meterflow.scenarios.bank_statement import BankTransfer, write_bank_statement
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
TODAY = local_today()
TEXT = {
    "zh-CN": {"matched": "已匹配", "unmatched": "待认领", "assigned": "已认领并记为收款。"},
    "en": {"matched": "Matched", "unmatched": "Unmatched", "assigned": "Assigned and recorded"},
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("bank-pages"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def status(rig: WebRig, invoice_id: str) -> str:
    with rig.sessions() as s:
        row = s.get(Invoice, invoice_id)
        assert row is not None
        return row.status


@pytest.mark.parametrize(
    ("kind", "lang", "lease", "owed"),
    [("desktop", "zh-CN", "L-A1", 800_000), ("phone", "en", "L-A2", None)],
)
def test_a_manager_records_payments_by_importing_a_bank_statement(
    browser: Any, rig: WebRig, base_url: str, tmp_path: Path, kind: str, lang: str, lease, owed
) -> None:
    text = TEXT[lang]
    serial = f"WEB-{kind}"
    lines = [
        BankTransfer(TODAY, owed or 12_300, "张伟", "", f"房租 {lease}", f"{serial}-1"),
        BankTransfer(TODAY, 4_200, "陌生人", "", "转账", f"{serial}-2"),
        BankTransfer(TODAY, -100, "", "", "手续费", f"{serial}-3"),
    ]
    statement = write_bank_statement(tmp_path / f"{kind}.csv", lines, encoding="gb18030")
    ctx = phone(browser) if kind == "phone" else desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-a", lang)
    page.goto(f"{base_url}/payments/bank?lang={lang}")
    assert_accessible(page, f"bank-{kind}-{lang}")
    page.locator("input[type=file][name=file]").set_input_files(str(statement))
    page.locator("form[enctype='multipart/form-data'] button[type=submit]").click()
    page.wait_for_selector("[data-testid=bank-result]")
    result = page.locator("[data-testid=bank-result]")
    assert result.locator("[data-count=matched]").inner_text() == "1"
    assert result.locator("[data-count=unmatched]").inner_text() == "1"
    assert result.locator("[data-count=ignored]").inner_text() == "1"
    matched = result.locator("tr[data-status=matched]")
    assert lease in matched.inner_text() and text["matched"] in matched.inner_text()
    if owed:
        assert f"{lease}/2026-02 8000.00" in matched.inner_text()
        assert status(rig, f"{lease}/2026-02") == "paid"
    assert text["unmatched"] in result.locator("tr[data-status=unmatched]").inner_text()
    assert_accessible(page, f"bank-result-{kind}-{lang}")
    screenshot(page, f"bank-result-{kind}-{lang}")
    # the unmatched line waits in the queue: the manager assigns it to a lease of building A
    item = page.locator("[data-testid=unmatched] li[data-line]", has_text="陌生人")
    item.locator("input[name=lease_id]").fill("L-A2")
    item.locator("form[action*='/assign'] button[type=submit]").click()
    page.wait_for_selector("p.notice")
    assert text["assigned"] in page.locator("p.notice").inner_text()
    assert page.locator("[data-testid=unmatched] li[data-line]", has_text="陌生人").count() == 0
    assert "L-A2" in page.locator("[data-testid=matched]").inner_text()
    ctx.close()


def test_a_credit_note_is_requested_by_a_manager_and_approved_by_the_supervisor(
    browser: Any, rig: WebRig, base_url: str
) -> None:
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-a", "zh-CN")
    page.goto(f"{base_url}/payments/credit-notes")
    page.get_by_label("租约").fill("L-A1")
    page.get_by_label("金额（元）").fill("150.00")
    page.get_by_label("原因").fill("停水两天减免")
    page.locator("form[action^='/payments/credit-notes?'] button[type=submit]").click()
    page.wait_for_selector("p.notice")
    note = page.locator("[data-testid=credit-notes] li[data-status=requested]")
    assert "150.00" in note.inner_text() and note.locator("button").count() == 0  # no approving
    assert_accessible(page, "credit-notes-manager")
    ctx.close()
    ctx = phone(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "sup-a", "en")
    page.goto(f"{base_url}/payments/credit-notes?lang=en")
    assert_accessible(page, "credit-notes-supervisor-en")
    note = page.locator("[data-testid=credit-notes] li[data-status=requested]")
    note.locator("form[action*='/approve'] button[type=submit]").click()
    page.wait_for_selector("p.notice")
    assert (
        "Approved"
        in page.locator("[data-testid=credit-notes] li[data-status=approved]").inner_text()
    )
    screenshot(page, "credit-notes-supervisor-en")
    with rig.sessions() as s:
        cents = s.scalars(
            select(CreditEntry.cents).where(
                CreditEntry.lease_id == "L-A1", CreditEntry.kind == "credit_note"
            )
        ).all()
    assert cents == [15_000]
    ctx.close()
