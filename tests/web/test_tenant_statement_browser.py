"""The tenant statement in the tenant's language, in Debian Chromium on a phone and a desktop,
in Chinese and English (decision 0021): the formulas with their numbers, display names,
尖峰平谷, 倍率 and the use written out, subtotals and the share of the bill, both charts with
their units, the readings at a move-out and a move-in, the estimate marker, the applied unit
price; axe-core on every page; screenshots kept under test-artifacts/web. Also: bad links get
a page, the confirmation takes a typed name, and the tenant JSON holds only the tenant's own
meters. The cases are tests/support/statement_cases.py (tou, move_in and gaps with names)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from cloud.apportion.models import ApportionStatement, StatementConfirmation
from cloud.apportion.statement import sign_statement
from cloud.statements.links import StatementKey
from tests.support.axe import assert_accessible
from tests.support.browser import (
    WebRig,
    desktop,
    make_rig,
    phone,
    screenshot,
    serve,
)
from tests.support.statement_cases import seed_statement_cases

pytestmark = pytest.mark.timeout(300)

DEVICES = {"phone": phone, "desktop": desktop}
LANGS = ("zh-CN", "en")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("statement"), months=3)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def runs(rig: WebRig) -> dict[str, str]:
    return seed_statement_cases(rig.sessions, rig.key)


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def _open(browser: Any, device: str, url: str) -> tuple[Any, Any]:
    context = DEVICES[device](browser)
    page = context.new_page()
    reply = page.goto(url)
    assert reply is not None and reply.status == 200, url
    return context, page


def _check(page: Any, name: str) -> str:
    """Screenshot, axe, no sideways scrolling on a phone; the page's visible text."""
    screenshot(page, name)
    assert_accessible(page, name)
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.viewport_size["width"]
    assert width <= viewport, f"{name}: the page scrolls sideways ({width} > {viewport} px)"
    return str(page.locator("main").inner_text())


TOU_TEXTS = {
    "zh-CN": [
        "星辰科技园",
        "A101 星辰科技",
        "星辰科技有限公司",
        "电表 A101 电表",
        "倍率 20",
        "(本期 − 上期) × 倍率 = 用量：(2.50 − 0.50) × 20 = 40.000 kWh",
        "(本期 − 上期) × 倍率 = 用量：(9.50 − 2.00) × 20 = 150.000 kWh",
        "公区分摊 · 电梯 · 尖",
        "公区分摊 = 公区表用量 × 本户面积·天 ÷ 参与面积·天 = 5.000 kWh × 1,800.00 m²·天 ÷ "
        "3,000.00 m²·天 = 3.000 kWh",
        "本户面积·天 = 60.00 m² × 30 天 = 1,800.00 m²·天",
        "线损 = 总配电室 用量 − 下级表计之和 = 10.000 kWh，"
        "线损率 λ = 10.000 ÷ 1,000.000 kWh = 1.00%",
        "100.000 kWh × 单价 0.5625 元/kWh = ¥56.25",
        "目录电价 0.60 元/kWh，本期按电费单执行 0.5625 元/kWh（0.9375 × 目录价）",
        "本户用电小计 ¥239.25 + 公摊小计 ¥21.93 · 占园区电费比例 42.90%",
        "本期费用构成",
    ],
    "en": [
        "A101 星辰科技",
        "multiplier 20",
        "(current − previous) × multiplier = use: (2.50 − 0.50) × 20 = 40.000 kWh",
        "Common area share · 电梯 · critical peak",
        "Common area share = common meter use × your area × days ÷ participating area × days "
        "= 5.000 kWh × 1,800.00 m²·d ÷ 3,000.00 m²·d = 3.000 kWh",
        "100.000 kWh × unit price 0.5625 CNY/kWh = ¥56.25",
        "catalogue price 0.60 CNY/kWh; this period's bill gives 0.5625 CNY/kWh "
        "(0.9375 × catalogue)",
        "Own use subtotal ¥239.25 + Shared subtotal ¥21.93 · Share of the site's bill 42.90%",
        "How this month's amount is made up",
    ],
}
TOU_REGISTERS = {
    "zh-CN": ["尖", "峰", "平", "谷"],
    "en": ["critical peak", "peak", "flat", "valley"],
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lang", LANGS)
def test_tou_statement_reads_in_the_tenants_language(
    rig: WebRig, runs: dict[str, str], base_url: str, browser: Any, device: str, lang: str
) -> None:
    link = rig.web.links.link_for(StatementKey(runs["park-t"], "A", "TA")).path()
    context, page = _open(browser, device, f"{base_url}{link}?lang={lang}")
    text = _check(page, f"tenant-tou-{device}-{lang}")
    for expected in TOU_TEXTS[lang]:
        assert expected in text, f"{expected!r} not on the {lang} page"
    heads = page.locator("[data-testid=readings] tbody th").all_inner_texts()
    assert heads == TOU_REGISTERS[lang]
    assert "T1" not in text and "T4" not in text and "TA" not in text
    if lang == "zh-CN":  # no English sentence of the signed v1 form
        assert "area key" not in text and "CNY" not in text
    # the subtotals are the lines' own sums and make the total
    own = sum(
        int(c)
        for c in page.locator("[data-testid=own-lines] li[data-cents]").evaluate_all(
            "xs => xs.map(x => x.dataset.cents)"
        )
    )
    shared = page.locator("[data-testid=shared-lines] li[data-cents]").evaluate_all(
        "xs => xs.map(x => x.dataset.cents)"
    )
    assert (own, sum(int(c) for c in shared)) == (23925, 2193)
    assert page.get_by_test_id("total").get_attribute("data-cents") == str(23925 + 2193)
    # the composition chart: own use, the lift, the loss, each with ¥ and its share
    chart = page.locator("svg.composition")
    assert chart.count() == 1 and chart.get_attribute("role") == "img"
    labels = chart.locator("text.value").all_text_contents()
    assert labels == ["¥239.25 · 91.6%", "¥18.26 · 7.0%", "¥3.67 · 1.4%"]
    assert chart.locator("text.axis-label").text_content() == (
        "金额（¥）" if lang == "zh-CN" else "Amount (¥)"
    )
    context.close()


def test_history_and_composition_charts_side_by_side_with_units(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    link = rig.link(rig.seeded.latest)
    for lang, axis in (("zh-CN", "金额（¥）"), ("en", "Amount (¥)")):
        context, page = _open(browser, "desktop", f"{base_url}{link}?lang={lang}")
        _check(page, f"tenant-charts-desktop-{lang}")
        history, composition = page.locator("svg.history"), page.locator("svg.composition")
        assert history.count() == 1 and composition.count() == 1
        assert history.locator("text.axis-label").text_content() == axis
        assert composition.locator("text.axis-label").text_content() == axis
        assert history.locator("g.bar").count() == 3  # the three posted months
        assert history.get_attribute("aria-label") and composition.get_attribute("aria-label")
        # side by side on a desktop: the two cards share a row
        boxes = [page.get_by_test_id(t).bounding_box() for t in ("composition", "history-card")]
        assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[0]["x"] < boxes[1]["x"]
        # the text alternative: a table of the same amounts
        rows = page.get_by_test_id("composition").locator("tbody tr").all_inner_texts()
        assert len(rows) == 3 and all("¥" in r for r in rows)
        context.close()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lang", LANGS)
def test_move_out_and_move_in_readings_are_shown_and_marked(
    rig: WebRig, runs: dict[str, str], base_url: str, browser: Any, device: str, lang: str
) -> None:
    words = {
        "zh-CN": ("本期", "上期", "插值", "实抄", "租期"),
        "en": ("Current", "Previous", "interpolated", "read", "tenancy"),
    }[lang]
    current, previous, interpolated, read, stay = words
    # X moved out of A302 on 04-11, a day without a reading: the end reading is interpolated
    link = rig.web.links.link_for(StatementKey(runs["park-m"], "A", "X")).path()
    context, page = _open(browser, device, f"{base_url}{link}?lang={lang}")
    text = _check(page, f"tenant-move-out-{device}-{lang}")
    assert "旧邻贸易" in text and "A302" in text
    assert f"({stay} 2026-04-01 – 2026-04-10)" in text
    meter = page.get_by_test_id("meter-UA")
    assert meter.locator("thead th").all_inner_texts()[1:] == [previous, current]
    assert meter.locator("tbody td").all_inner_texts() == ["100.00", "123.33"]  # 本期, never —
    marks = meter.get_by_test_id("reading-2").inner_text()
    assert marks.startswith(current) and "2026-04-11 00:00" in marks and interpolated in marks
    assert "× 1 = 23.333 kWh" in meter.get_by_test_id("usage").inner_text()
    context.close()
    # Y moved in on 04-16: the reading of that day opens its statement
    link = rig.web.links.link_for(StatementKey(runs["park-m"], "A", "Y")).path()
    context, page = _open(browser, device, f"{base_url}{link}?lang={lang}")
    text = _check(page, f"tenant-move-in-{device}-{lang}")
    assert "新禾咨询" in text and f"({stay} 2026-04-16 – 2026-04-30)" in text
    meter = page.get_by_test_id("meter-UA")
    assert meter.locator("tbody td").all_inner_texts() == ["135.00", "195.00"]
    marks = meter.get_by_test_id("reading-1").inner_text()
    assert marks.startswith(previous) and "2026-04-16 00:00" in marks and read in marks
    context.close()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("lang", LANGS)
def test_estimate_is_disclosed_on_the_line(
    rig: WebRig, runs: dict[str, str], base_url: str, browser: Any, device: str, lang: str
) -> None:
    link = rig.web.links.link_for(StatementKey(runs["park-e"], "A", "TA")).path()
    context, page = _open(browser, device, f"{base_url}{link}?lang={lang}")
    _check(page, f"tenant-estimate-{device}-{lang}")
    estimate = page.get_by_test_id("estimate").inner_text()
    if lang == "zh-CN":
        assert estimate == "估算 其中 40.000 kWh 为估算值（缺少读数的天数按本表历史用量估算）"
    else:
        assert estimate == (
            "estimated of which 40.000 kWh estimated "
            "(days without readings estimated from this meter's history)"
        )
    marks = page.get_by_test_id("meter-UA").get_by_test_id("reading-2").inner_text()
    assert ("估算" if lang == "zh-CN" else "estimated") in marks
    context.close()


def test_confirming_takes_the_typed_name_and_finance_sees_it(
    rig: WebRig, runs: dict[str, str], base_url: str, browser: Any
) -> None:
    run = runs["park-t"]
    link = rig.web.links.link_for(StatementKey(run, "B", "TB")).path()
    context, page = _open(browser, "phone", f"{base_url}{link}")
    assert page.get_by_test_id("confirm-name").get_attribute("required") is not None
    page.get_by_test_id("confirm-name").fill("陈 静")
    page.get_by_test_id("confirm").click()
    page.get_by_test_id("confirmed").wait_for()
    assert "确认人 陈 静" in page.get_by_test_id("confirmed").inner_text()
    _check(page, "tenant-confirmed-name-phone-zh-CN")
    context.close()
    with rig.sessions() as s:
        row = s.get(StatementConfirmation, (run, "B", "TB"))
        assert row is not None and row.confirmed_name == "陈 静"
    with httpx.Client(base_url=base_url) as client:
        auth = {"Authorization": f"Bearer {rig.token(client, 'admin')}"}
        detail = client.get(f"/api/v1/runs/{run}", headers=auth).json()
    shown = next(s for s in detail["statements"] if s["unit"] == "B")
    assert shown["confirmed_name"] == "陈 静"


@pytest.mark.parametrize("lang", LANGS)
def test_bad_and_truncated_links_get_a_page_not_json(
    rig: WebRig, runs: dict[str, str], base_url: str, browser: Any, lang: str
) -> None:
    good = rig.web.links.link_for(StatementKey(runs["park-t"], "A", "TA")).path()
    token = good.rsplit("/", 1)[1]
    bad = [
        "/t/A",  # the token cut off
        "/t/A/",
        f"/t/A/{token[:10]}",  # truncated
        f"/t/A/{token}/extra",
        f"/t/A/{token}{'x' * 300}",  # longer than any link
        "/t/",
    ]
    context = phone(browser)
    page = context.new_page()
    for i, path in enumerate(bad):
        reply = page.goto(f"{base_url}{path}?lang={lang}")
        assert reply is not None and reply.status in (400, 403), path
        assert reply.headers["content-type"].startswith("text/html"), path
        refusal = page.get_by_test_id("refused")
        assert refusal.get_attribute("data-reason") == "malformed", path
        said = "链接不完整或已损坏" if lang == "zh-CN" else "incomplete or damaged"
        assert said in refusal.inner_text()
        if i == 0:
            screenshot(page, f"tenant-truncated-link-{lang}")
            assert_accessible(page, f"tenant-truncated-link-{lang}")
    context.close()


def test_tenant_json_holds_only_the_tenants_own_meters(
    rig: WebRig, runs: dict[str, str], base_url: str
) -> None:
    link = rig.web.links.link_for(StatementKey(runs["park-m"], "A", "X")).path()
    with httpx.Client(base_url=base_url) as client:
        data = client.get(link.replace("/t/", "/api/v1/tenant/", 1)).json()
    statement = data["statement"]
    assert [m["meter"] for m in statement["meters"]] == ["UA"]
    # the run flagged C1, M0, UA and UB as prorated: the tenant sees its own meter only
    assert statement["flags"] == [
        {"code": "prorated", "subject": "meter UA", "holds": False, "message": ""}
    ]
    for other in ("UB", "C1", "M0"):
        assert other not in data["signed"]["payload"]


def _as_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """The statement in the form signed before decision 0021 (mf.statement/1)."""
    old = {k: v for k, v in doc.items() if k not in ("site_name", "party_name", "subtotals")}
    old["schema"] = "mf.statement/1"
    old["meters"] = [
        {
            **{k: v for k, v in m.items() if k not in ("start", "end", "name")},
            "previous": {k: v for k, v in m["start"].items() if k != "source"},
            "current": {k: v for k, v in m["end"].items() if k != "source"},
        }
        for m in doc["meters"]
    ]
    old["lines"] = [
        {k: v for k, v in x.items() if k not in ("calc", "price", "origin_name")}
        for x in doc["lines"]
    ]
    return old


def test_a_statement_signed_in_the_old_form_still_opens_and_verifies(
    rig: WebRig, runs: dict[str, str], base_url: str
) -> None:
    run = runs["park-e"]
    key = (ApportionStatement.run_id == run, ApportionStatement.unit == "B")
    with rig.sessions.begin() as s:
        payload = s.scalars(select(ApportionStatement.payload).where(*key)).one()
        old = _as_v1(json.loads(payload))
        signed = sign_statement(old, rig.key)
        s.execute(  # past the ORM's guard: as an old registry holds it
            update(ApportionStatement)
            .where(*key)
            .values(payload=signed.payload, kid=signed.kid, signature=signed.signature)
        )
    link = rig.web.links.link_for(StatementKey(run, "B", "TB")).path()
    with httpx.Client(base_url=base_url) as client:
        page = client.get(link)
        data = client.get(link.replace("/t/", "/api/v1/tenant/", 1)).json()
    assert page.status_code == 200 and 'data-testid="genuine"' in page.text
    assert data["genuine"] and data["statement"]["schema"] == "mf.statement/1"
    loss = next(x for x in old["lines"] if x["component"] == "loss")
    assert html.escape(loss["explanation"], quote=False) in page.text  # as it was signed
    assert f"¥{old['total']['amount_cny']}" in page.text
