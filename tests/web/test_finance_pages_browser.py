"""Finance's pages in a real browser (Debian Chromium, headless, under Playwright), phone and
desktop, Chinese and English: the run page's reconciliation equals the run's lines and bill,
its audit trail lists each event once (translated, with the tenant's name), its flags read
in words; and axe-core finds nothing serious or critical on any finance, admin, home,
sign-in, password, disputes or error page. Screenshots and axe reports go to
``test-artifacts/web/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloud.apportion.models import ApportionLine
from cloud.apportion.reconcile import GROUPS
from cloud.leases.models import Tenant
from tests.support.axe import assert_accessible
from tests.support.browser import (
    WebRig,
    desktop,
    make_rig,
    phone,
    screenshot,
    serve,
    sign_in,
)
from tests.web.test_web_close import PASSWORD as CLOSE_PASSWORD
from tests.web.test_web_close import body, client_for, close_rig

pytestmark = pytest.mark.timeout(300)

#: the display name of tenant ACME in the tenants' records
ACME_NAME = "星辰科技有限公司"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("finance-pages"), months=2)
    with rig.sessions.begin() as s:
        s.add(Tenant(id="ACME", name=ACME_NAME))
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


@pytest.fixture(scope="module")
def disputed(rig: WebRig, base_url: str) -> int:
    """ACME disputes its latest statement through its link (an open dispute, a trail entry)."""
    with httpx.Client(base_url=base_url) as client:
        path = rig.link(rig.seeded.latest).replace("/t/", "/api/v1/tenant/", 1)
        reply = client.post(f"{path}/dispute", json={"comment": "电表读数偏高"})
        assert reply.status_code == 200, reply.text
    return 1


def context(browser: Any, kind: str) -> Any:
    return phone(browser) if kind == "phone" else desktop(browser)


def cells(page: Any, register: str, kind: str) -> dict[str, str]:
    row = page.locator(
        f"[data-testid=reconciliation] tbody[data-register='{register}'] tr[data-kind='{kind}']"
    )
    return {
        name: row.locator(f"td[data-cell='{name}']").inner_text().split()[0]
        for name in ("bill", "own_use", "shared", "loss", "lines", "diff")
    }


def money(cents: int) -> str:
    return f"{Decimal(cents) / 100:,.2f}"


def test_reconciliation_equals_the_runs_lines_and_bill(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    run = rig.seeded.latest
    with rig.sessions() as s:
        lines = s.execute(
            select(ApportionLine.component, ApportionLine.kwh, ApportionLine.cents).where(
                ApportionLine.run_id == run
            )
        ).all()
    cents = {"own_use": 0, "shared": 0, "loss": 0}
    kwh = {"own_use": Decimal(0), "shared": Decimal(0), "loss": Decimal(0)}
    for component, k, c in lines:
        cents[GROUPS[component]] += c
        kwh[GROUPS[component]] += Decimal(k)
    total = sum(cents.values())
    # the seeded April: basic.yaml scaled by 1.24, its bill 720.00 × 1.24 = 892.80
    assert total == 89280
    ctx = context(browser, "desktop")
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a")
    page.goto(f"{base_url}/finance/runs/{run}")
    assert page.get_by_test_id("reconciliation").get_by_role("heading").inner_text() == (
        "对账：电费账单 = Σ 分摊明细"
    )
    cny = cells(page, "total", "cny")
    assert cny == {
        "bill": "892.80",
        "own_use": money(cents["own_use"]),
        "shared": money(cents["shared"]),
        "loss": money(cents["loss"]),
        "lines": "892.80",
        "diff": "0.00",
    }
    assert (cents["own_use"], cents["shared"], cents["loss"]) == (55800, 26040, 7440)
    energy = cells(page, "total", "kwh")
    # main meter (1120 − 1000) × 10 × 1.24 = 1488 kWh = own use 930 + shared 434 + loss 124
    assert energy == {
        "bill": "1,488.00",
        "own_use": f"{kwh['own_use']:,.2f}",
        "shared": f"{kwh['shared']:,.2f}",
        "loss": f"{kwh['loss']:,.2f}",
        "lines": "1,488.00",
        "diff": "0.00",
    }
    assert energy["own_use"] == "930.00" and energy["loss"] == "124.00"
    assert "相符" in page.locator("tbody[data-register='total'] tr[data-kind='cny']").inner_text()
    screenshot(page, "finance-run-reconciliation-desktop-zh")
    # the held run of park-b: the children measure 20 kWh more than the main meter
    page.close()
    page = ctx.new_page()
    sign_in(page, base_url, "fin-b", "en")
    page.goto(f"{base_url}/finance/runs/{rig.seeded.held}?lang=en")
    assert cells(page, "total", "kwh") == {
        "bill": "300.00",
        "own_use": "320.00",
        "shared": "0.00",
        "loss": "0.00",
        "lines": "320.00",
        "diff": "-20.00",
    }
    assert cells(page, "total", "cny")["diff"] == "0.00"
    assert "negative residual" in page.get_by_test_id("recon-kwh-note").inner_text()
    ctx.close()


def test_the_trail_lists_each_event_once_translated(
    rig: WebRig, base_url: str, browser: Any, disputed: int
) -> None:
    draft = rig.seeded.draft
    ctx = context(browser, "desktop")
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a")
    page.goto(f"{base_url}/finance/runs/{draft}")
    page.get_by_test_id("action-review").click()
    page.wait_for_url(re.compile(r".*done=reviewed.*"))
    ctx.close()
    ctx = context(browser, "desktop")
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a2")
    page.goto(f"{base_url}/finance/runs/{draft}")
    page.get_by_test_id("action-approve").click()
    page.wait_for_url(re.compile(r".*done=approved.*"))
    items = page.get_by_test_id("trail").locator("li").all_inner_texts()
    assert [re.sub(r"^\S+ \S+ · ", "", i) for i in items] == [
        "seed 创建结算批次",
        "fin-a 复核",
        "fin-a2 批准",
    ]
    screenshot(page, "finance-run-trail-desktop-zh")
    page.goto(f"{base_url}/finance/runs/{draft}?lang=en")
    items = page.get_by_test_id("trail").locator("li").all_inner_texts()
    assert [re.sub(r"^\S+ \S+ · ", "", i) for i in items] == [
        "seed created the run",
        "fin-a reviewed",
        "fin-a2 approved",
    ]
    # the tenant's dispute, under the tenant's name
    page.goto(f"{base_url}/finance/runs/{rig.seeded.latest}")
    trail = page.get_by_test_id("trail").inner_text()
    assert f"租户 {ACME_NAME} (ACME) 对账单提出异议 — 单元 A101：电表读数偏高" in trail
    assert trail.count("过账") == 1 and trail.count("批准") == 1
    statements = page.get_by_test_id("statements").inner_text()
    assert ACME_NAME in statements
    ctx.close()


def test_flags_read_in_words_in_both_languages(rig: WebRig, base_url: str, browser: Any) -> None:
    ctx = context(browser, "phone")
    page = ctx.new_page()
    sign_in(page, base_url, "fin-b")
    page.goto(f"{base_url}/finance/runs/{rig.seeded.held}")
    flag = page.locator("[data-testid=flags] li[data-flag=negative_residual]")
    text = flag.inner_text()
    assert "负残差（分表合计大于总表） · 节点 MAIN" in text
    assert "下级表计之和大于本节点" in text and "阻止批准" in text
    tree_badge = page.locator("[data-testid=tree] [data-flag=negative_residual]")
    assert tree_badge.inner_text() == "负残差（分表合计大于总表）"
    screenshot(page, "finance-run-flags-phone-zh")
    page.goto(f"{base_url}/finance/runs/{rig.seeded.held}?lang=en")
    text = page.locator("[data-testid=flags] li[data-flag=negative_residual]").inner_text()
    assert "Negative residual (children measure more than the node) · node MAIN" in text
    page.goto(f"{base_url}/finance/runs/{rig.seeded.other_site_posted}?lang=en")
    text = page.locator("[data-testid=flags] li[data-flag=loss_over_cap]").inner_text()
    assert "Loss above the cap · node MAIN" in text and "the landlord the excess" in text
    ctx.close()


def test_a_finance_page_does_not_move_focus_by_itself(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    ctx = context(browser, "desktop")
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a")
    page.goto(f"{base_url}/finance/runs")
    assert page.locator("meta[http-equiv=refresh]").count() == 0
    field = page.get_by_label(re.compile("^账期"))
    field.click()
    field.type("2026-0")
    page.wait_for_timeout(6000)  # longer than the engineer pages' 5-second refresh
    assert page.evaluate("document.activeElement && document.activeElement.name") == "period"
    assert field.input_value() == "2026-0"
    ctx.close()


def staff_pages(rig: WebRig) -> list[tuple[str, str, str]]:
    """(name, account, path) of the pages axe checks."""
    held, latest = rig.seeded.held, rig.seeded.latest
    return [
        ("home", "fin-a", "/"),
        ("password", "fin-a", "/account/password"),
        ("runs", "fin-a", "/finance/runs"),
        ("run-posted", "fin-a", f"/finance/runs/{latest}"),
        ("run-draft", "fin-a", f"/finance/runs/{rig.seeded.draft}"),
        ("run-held", "fin-b", f"/finance/runs/{held}"),
        ("confirm-void", "fin-b", f"/finance/runs/{held}/void"),
        ("close", "fin-a", "/finance/close"),
        ("disputes", "fin-a", "/finance/disputes"),
        ("disputes-all", "fin-a", "/finance/disputes?status=all"),
        ("risk", "fin-a", "/finance/risk"),
        ("not-found", "fin-a", "/finance/runs/no-such-run"),
        ("admin-accounts", "admin", "/admin/accounts"),
        ("admin-replacements", "admin", "/admin/replacements"),
        ("admin-run-posted", "admin", f"/finance/runs/{latest}"),
    ]


@pytest.mark.parametrize("kind", ["desktop", "phone"])
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_axe_finds_nothing_serious_on_the_staff_pages(
    rig: WebRig, base_url: str, browser: Any, disputed: int, kind: str, lang: str
) -> None:
    ctx = context(browser, kind)
    page = ctx.new_page()
    page.goto(f"{base_url}/login?lang={lang}")
    assert page.locator("html").get_attribute("lang") == lang
    assert_accessible(page, f"login-{kind}-{lang}")
    screenshot(page, f"login-{kind}-{lang}")
    signed_in = ""
    for name, account, path in staff_pages(rig):
        if account != signed_in:
            ctx.clear_cookies()
            sign_in(page, base_url, account, lang)
            signed_in = account
        sep = "&" if "?" in path else "?"
        page.goto(f"{base_url}{path}{sep}lang={lang}")
        assert page.locator("html").get_attribute("lang") == lang, name
        assert page.locator("meta[http-equiv=refresh]").count() == 0, name
        for field in page.locator("input:not([type=hidden]):not([hidden]), select, textarea").all():
            label = field.evaluate(
                "e => (e.labels && e.labels.length ? e.labels[0].innerText : '')"
                " || e.getAttribute('aria-label') || ''"
            )
            assert label.strip(), (
                f"{name}: an input without a label: {field.evaluate('e => e.outerHTML')}"
            )
        assert_accessible(page, f"{name}-{kind}-{lang}")
        screenshot(page, f"{name}-{kind}-{lang}")
    ctx.close()


def test_a_held_runs_remedies_are_labelled_and_leave_a_translated_trail(
    tmp_path: Path, browser: Any
) -> None:
    """A run held for a missing reading (park-a with its site file): the remedies' inputs
    have labels, axe passes on phone and desktop in both languages; the reading entered
    and the close again show once each in the trail, in words."""
    with close_rig(tmp_path, drop=("U2", "2026-05-01")) as rig:
        with client_for(rig, "fin-a") as client:
            held = client.post("/api/v1/close", json=body(rig)).json()
        assert held["held"]
        ctx = context(browser, "desktop")
        page = ctx.new_page()
        sign_in(page, rig.url, "fin-a", password=CLOSE_PASSWORD)
        for kind in ("desktop", "phone"):
            if kind == "phone":
                ctx.close()
                ctx = context(browser, "phone")
                page = ctx.new_page()
                sign_in(page, rig.url, "fin-a", password=CLOSE_PASSWORD)
            for lang in ("zh-CN", "en"):
                page.goto(f"{rig.url}/finance/runs/{held['run']}?lang={lang}")
                assert page.get_by_test_id("remedies").is_visible()
                assert_accessible(page, f"run-remedies-{kind}-{lang}")
                screenshot(page, f"run-remedies-{kind}-{lang}")
        page.goto(f"{rig.url}/finance/runs/{held['run']}")
        page.get_by_label("表盘读数 U2").fill("450.00")
        note = page.get_by_label("备注（如：人工抄表）")
        assert note.is_visible() and note.get_attribute("placeholder") is None
        note.fill("人工抄表")
        page.get_by_role("button", name="保存读数").click()
        page.wait_for_url(re.compile(r".*done=reading.*"))
        page.get_by_test_id("close-again-submit").click()
        page.wait_for_url(lambda url: held["run"] not in url)
        new_run = page.url.split("/finance/runs/")[1].split("?")[0]
        items = page.get_by_test_id("trail").locator("li").all_inner_texts()
        actions = [re.sub(r"^\S+ \S+ · ", "", i) for i in items]
        assert len(actions) == 1, actions  # the close is one event, not "create" + "run.close"
        assert actions[0].startswith(
            "fin-a 创建结算批次 — 项目 park-a，2026-04-01 … 2026-05-01，第 2 版"
        )
        assert f"；取代批次 {held['run']}" in actions[0]
        page.goto(f"{rig.url}/finance/runs/{held['run']}")
        trail = page.get_by_test_id("trail").inner_text()
        assert "补录读数 — 电表 U2 2026-05-01：表显示数 450.00 × 倍率 1" in trail
        assert f"作废 — 被批次 {new_run}（第 2 版）取代" in trail
        assert trail.count("创建结算批次") == 1
        screenshot(page, "run-superseded-trail-desktop-zh")
        ctx.close()
