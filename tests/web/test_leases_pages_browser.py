"""The lease pages of the lease-operation roles in a real browser (Debian Chromium, headless,
under Playwright), phone and desktop, Chinese and English: a manager of building A lands on
the lease list and sees only building A's leases, ID numbers masked and no money; finance sees
the arrears; legal sees the ID number in full; the admin gives a new manager a building on the
accounts page and the registry stores it. axe-core finds nothing serious or critical on any of
these pages. Screenshots and axe reports go to ``test-artifacts/web/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from cloud.staff.models import WebAccount
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
LAYOUTS = [("phone", "zh-CN"), ("desktop", "en"), ("desktop", "zh-CN"), ("phone", "en")]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("lease-pages"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def context(browser: Any, kind: str) -> Any:
    return phone(browser) if kind == "phone" else desktop(browser)


def rows(page: Any) -> dict[str, list[str]]:
    """Lease id → its cells' texts, from the lease table."""
    out = {}
    for row in page.locator("[data-testid=leases] tbody tr[data-lease]").all():
        out[row.get_attribute("data-lease")] = [c.inner_text() for c in row.locator("td").all()]
    return out


@pytest.mark.parametrize(("kind", "lang"), LAYOUTS)
def test_a_manager_sees_their_buildings_leases_masked(
    browser: Any, base_url: str, kind: str, lang: str
) -> None:
    ctx = context(browser, kind)
    page = ctx.new_page()
    sign_in(page, base_url, "mgr-a", lang)
    page.goto(f"{base_url}/leases?lang={lang}")
    seen = rows(page)
    assert sorted(seen) == ["L-A1", "L-A2"]
    assert "110***********1234" in seen["L-A1"] and "张伟" in seen["L-A1"]
    headers = page.locator("[data-testid=leases] thead th").all_inner_texts()
    assert not any("欠款" in h or "Arrears" in h for h in headers), headers
    assert "110105199001011234" not in page.content()
    nav = page.locator("header nav").inner_text()
    assert ("租约" if lang == "zh-CN" else "Leases") in nav
    assert_accessible(page, f"leases-manager-{kind}-{lang}")
    screenshot(page, f"leases-manager-{kind}-{lang}")
    # building B's lease does not exist for them
    reply = page.goto(f"{base_url}/leases/L-B1?lang={lang}")
    assert reply is not None and reply.status == 404
    not_found = {
        "zh-CN": "找不到该记录（或不在您的项目范围内）。",
        "en": "Not found (or not in your sites).",
    }
    assert page.locator("h1").inner_text() == not_found[lang]
    assert "王氏贸易公司" not in page.content()
    ctx.close()


@pytest.mark.parametrize(("kind", "lang"), LAYOUTS[:2])
def test_finance_sees_arrears_and_legal_the_id_number(
    browser: Any, base_url: str, kind: str, lang: str
) -> None:
    ctx = context(browser, kind)
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a", lang)
    page.goto(f"{base_url}/leases?lang={lang}")
    seen = rows(page)
    assert sorted(seen) == ["L-A1", "L-A2", "L-B1"]
    assert seen["L-A1"][7] == "8000.00" and seen["L-B1"][8] == "200.00"
    assert "110***********1234" in seen["L-A1"]
    assert_accessible(page, f"leases-finance-{kind}-{lang}")
    screenshot(page, f"leases-finance-{kind}-{lang}")
    ctx.close()
    ctx = context(browser, kind)
    page = ctx.new_page()
    sign_in(page, base_url, "legal-a", lang)
    page.goto(f"{base_url}/leases/L-A1?lang={lang}")
    facts = page.locator("[data-testid=lease]").inner_text()
    assert "110105199001011234" in facts and "张伟" in facts
    assert page.locator("[data-testid=lease] .arrears").count() == 0
    history = page.locator("[data-testid=lease-history]").inner_text()
    signed = "草拟 → 已签约" if lang == "zh-CN" else "Draft → Signed"
    assert "seed" in history and signed in history, history
    assert_accessible(page, f"lease-legal-{kind}-{lang}")
    screenshot(page, f"lease-legal-{kind}-{lang}")
    ctx.close()


@pytest.mark.parametrize(("kind", "lang"), LAYOUTS[:2])
def test_the_admin_gives_a_manager_a_building(
    browser: Any, rig: WebRig, base_url: str, kind: str, lang: str
) -> None:
    ctx = context(browser, kind)
    page = ctx.new_page()
    sign_in(page, base_url, "admin", lang)
    page.goto(f"{base_url}/admin/accounts?lang={lang}")
    mgr = page.locator("tr", has=page.locator("td", has_text=re.compile("^mgr-a$")))
    assert mgr.locator("td.buildings").inner_text() == "park-a/A"
    assert ("管家" if lang == "zh-CN" else "Manager") in mgr.inner_text()
    assert_accessible(page, f"accounts-buildings-{kind}-{lang}")
    name = f"mgr-new-{kind}"
    form = page.locator("form[action^='/admin/accounts?']")
    form.locator("input[name=username]").fill(name)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("select[name=role]").select_option("manager")
    form.locator("input[name=buildings]").fill("park-b/A park-b/2号楼")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    row = page.locator("tr", has=page.locator("td", has_text=re.compile(f"^{name}$")))
    assert row.locator("td.buildings").inner_text() == "park-b/2号楼, park-b/A"
    screenshot(page, f"accounts-buildings-{kind}-{lang}")
    with rig.sessions() as s:
        stored = s.get(WebAccount, name)
        assert stored is not None
        assert (stored.role, stored.sites, stored.buildings) == (
            "manager",
            ["park-b"],
            ["park-b/2号楼", "park-b/A"],
        )
    # a manager without a building: the page says what was expected, nothing is stored
    form = page.locator("form[action^='/admin/accounts?']")
    form.locator("input[name=username]").fill("mgr-none")
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("select[name=role]").select_option("manager")
    form.locator("input[name=sites]").fill("park-b")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert "needs at least one building" in page.locator("[role=alert]").inner_text()
    with rig.sessions() as s:
        assert s.get(WebAccount, "mgr-none") is None
    ctx.close()


def test_finance_records_a_payment_on_the_lease_page(browser: Any, base_url: str) -> None:
    """收款登记: the payment settles the open invoice, the rest is credit, the page says so
    and shows no arrears; the same reference again is not counted; the same reference with
    another amount is refused with the form kept as typed; legal sees no form."""
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a", "zh-CN")
    page.goto(f"{base_url}/leases/L-A1?lang=zh-CN")
    assert page.locator("[data-testid=lease] .arrears").inner_text() == "¥8000.00"
    form = page.locator("[data-testid=payment-form]")
    form.locator("input[name=amount]").fill("8100.50")
    form.locator("input[name=ref]").fill("前台收据 0001")
    form.locator("button[type=submit]").click()
    done = page.locator("[data-testid=payment-done]").inner_text()
    assert "¥8100.50" in done and "1 张账单 ¥8000.00" in done and "¥100.50" in done, done
    assert page.locator("[data-testid=lease] .arrears").inner_text() == "¥0.00"
    history = page.locator("[data-testid=lease-history]").inner_text()
    assert "fin-a" in history and "8100.50" in history, history
    assert_accessible(page, "lease-payment-done")
    form = page.locator("[data-testid=payment-form]")
    form.locator("input[name=amount]").fill("8100.50")
    form.locator("input[name=ref]").fill("前台收据 0001")
    form.locator("button[type=submit]").click()
    assert "未重复计入" in page.locator("[data-testid=payment-done]").inner_text()
    form = page.locator("[data-testid=payment-form]")
    form.locator("input[name=amount]").fill("9.99")
    form.locator("input[name=ref]").fill("前台收据 0001")
    form.locator("button[type=submit]").click()
    assert "is recorded as" in page.locator("[data-testid=payment-error]").inner_text()
    assert page.locator("[data-testid=payment-form] input[name=amount]").input_value() == "9.99"
    assert page.locator("[data-testid=lease] .arrears").inner_text() == "¥0.00"
    screenshot(page, "lease-payment-refused")
    ctx.close()
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "legal-a", "en")
    page.goto(f"{base_url}/leases/L-A1?lang=en")
    assert page.locator("[data-testid=lease]").count() == 1
    assert page.locator("[data-testid=payment-form]").count() == 0
    ctx.close()
