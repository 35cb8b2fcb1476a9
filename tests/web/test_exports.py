"""Finance's exports of a run through the HTTP routes, as a finance user: the CSV (BOM,
headers in Chinese or English, numbers as numbers, price and unit apart, end days inclusive,
display names) and the Excel workbook (number formats, widths, bold frozen header, totals row
equal to the run to the cent, local times, no float noise); the run page's links to both."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from cloud.apportion.case.loading import case_from_data
from cloud.apportion.models import ApportionLine, ApportionRun
from cloud.apportion.runs import approve_run, create_run, post_run, review_run
from cloud.leases.models import Tenant
from cloud.registry.base import as_utc
from tests.support.axe import assert_accessible
from tests.support.browser import WebRig, chromium, desktop, make_rig, month_case, screenshot, serve

BOM = b"\xef\xbb\xbf"
ZH_HEADERS = [
    "序号",
    "类型",
    "单元",
    "单元名称",
    "租户",
    "租户名称",
    "起始日",
    "截止日（含）",
    "费用项目",
    "分摊来源",
    "来源名称",
    "时段",
    "电价版本",
    "电量（kWh）",
    "单价",
    "单位",
    "目录电价",
    "金额（元）",
    "金额（分）",
    "所调整的批次",
]
EN_HEADERS = [
    "No.",
    "Kind",
    "Unit",
    "Unit name",
    "Tenant",
    "Tenant name",
    "From",
    "To (inclusive)",
    "Item",
    "Shared from",
    "Source name",
    "Register",
    "Tariff",
    "Energy (kWh)",
    "Unit price",
    "Price unit",
    "Catalogue price",
    "Amount (CNY)",
    "Amount (fen)",
    "Adjusts run",
]


def named_case() -> dict:
    """June 2026 at park-a with display names, readings with float-noisy differences, and a
    bill whose price (≈ 0.47 CNY/kWh) is not the catalogue's 0.60."""
    data = month_case(date(2026, 6, 1), 1.0)
    data["name"] = "星辰园区"
    for unit, name in (("A101", "星辰科技 101"), ("A102", "贝塔咖啡 102"), ("A103", "103 室")):
        next(u for u in data["units"] if u["id"] == unit)["name"] = name
    for node in data["tree"]:
        node["name"] = {"MAIN": "总表", "LIFT": "电梯", "OFFICE": "物业办公室"}.get(node["id"], "")
    data["readings"]["M0"]["2026-07-01"] = 1232.126  # × 10: 2321.26 kWh
    data["readings"]["U1"]["2026-07-01"] = 800.07
    data["bill"] = {"invoice": "SGCC-2026-06-park-a", "amounts": {"total": "1091.29"}}
    return data


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("exports"), months=1)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def run_id(rig: WebRig) -> str:
    with rig.sessions.begin() as s:
        s.add(Tenant(id="ACME", name="星辰科技有限公司"))
    with rig.sessions.begin() as s:
        run = create_run(s, case_from_data(named_case()), by="seed")
        review_run(s, run.id, by="seed-reviewer")
        approve_run(s, run.id, by="seed-approver")
        post_run(s, run.id, by="seed", key=rig.key)
        return run.id


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.headers["Authorization"] = f"Bearer {rig.token(client, 'fin-a')}"
        yield client


def run_cents(rig: WebRig, run: str) -> int:
    with rig.sessions() as s:
        return int(
            s.scalar(select(func.sum(ApportionLine.cents)).where(ApportionLine.run_id == run)) or 0
        )


def csv_rows(reply: httpx.Response) -> list[list[str]]:
    assert reply.status_code == 200, reply.text[:300]
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(reply.content.decode("utf-8-sig"))))


def test_csv_is_utf8_with_bom_and_chinese_headers_by_default(
    rig: WebRig, client: httpx.Client, run_id: str
) -> None:
    reply = client.get(f"/api/v1/runs/{run_id}/lines.csv")
    assert reply.content.startswith(BOM)
    assert not reply.content[3:].startswith(BOM)
    assert reply.headers["content-language"] == "zh-CN"
    rows = csv_rows(reply)
    assert rows[0] == ZH_HEADERS
    lines = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    with rig.sessions() as s:
        stored = s.scalar(select(func.count()).where(ApportionLine.run_id == run_id))
    assert len(lines) == stored
    own = next(x for x in lines if x["单元"] == "A101" and x["费用项目"] == "自用电量")
    assert own["单元名称"] == "星辰科技 101" and own["租户"] == "ACME" and own["时段"] == "总"
    assert own["租户名称"] == "星辰科技有限公司"
    assert {x["租户名称"] for x in lines if x["租户"] == "BETA"} == {""}  # no tenant record
    assert own["类型"] == "本期"
    # numbers as numbers, price and unit apart: the applied price (bill ÷ kWh), not the catalogue
    assert own["单位"] == "元/kWh" and own["目录电价"] == "0.6"
    applied = (Decimal("1091.29") / Decimal("2321.26")).quantize(Decimal("0.000001"))
    assert Decimal(own["单价"]) == applied == Decimal("0.470128")  # the bill ÷ the main's kWh
    assert Decimal(own["电量（kWh）"]) == Decimal("300.07")  # 800.07 − 500
    assert Decimal(own["金额（元）"]) * 100 == int(own["金额（分）"])
    # the period 06-01..07-01 (exclusive) ends on 06-30, as the pages show it
    assert (own["起始日"], own["截止日（含）"]) == ("2026-06-01", "2026-06-30")
    lift = next(x for x in lines if x["分摊来源"] == "LIFT" and x["单元"] == "A101")
    assert lift["来源名称"] == "电梯" and lift["费用项目"] == "公区分摊"
    landlord = [x for x in lines if x["租户"] == "业主"]
    assert landlord and all(x["单元名称"] or not x["单元"] for x in landlord)
    assert sum(Decimal(x["金额（元）"]) for x in lines) * 100 == run_cents(rig, run_id)


def test_csv_headers_and_names_in_english(client: httpx.Client, run_id: str) -> None:
    reply = client.get(f"/api/v1/runs/{run_id}/lines.csv?lang=en")
    assert reply.content.startswith(BOM) and reply.headers["content-language"] == "en"
    rows = csv_rows(reply)
    assert rows[0] == EN_HEADERS
    lines = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    kinds = {x["Item"] for x in lines}
    assert {"Own use", "Common area share", "Line loss share"} <= kinds
    assert {x["Price unit"] for x in lines} == {"CNY/kWh"}
    assert {x["To (inclusive)"] for x in lines if x["To (inclusive)"]} == {"2026-06-30"}
    assert "Landlord" in {x["Tenant"] for x in lines}


def test_xlsx_formats_totals_local_times_no_float_noise(
    rig: WebRig, client: httpx.Client, run_id: str
) -> None:
    reply = client.get(f"/api/v1/runs/{run_id}/lines.xlsx")
    assert reply.status_code == 200, reply.text[:300]
    assert reply.headers["content-type"].startswith("application/vnd.openxmlformats")
    detail = client.get(f"/api/v1/runs/{run_id}").json()
    noisy = [n["kwh"] for n in detail["nodes"] if len(repr(n["kwh"]).partition(".")[2]) > 6]
    assert noisy, "the case should give the tree float-noisy energies (e.g. 2321.2599999999998)"
    # no binary float noise: numbers are written at the stored precision (the lines' and the
    # tree's sheets hold no times, whose Excel serial numbers have long fractions)
    with zipfile.ZipFile(io.BytesIO(reply.content)) as z:
        xml = (
            z.read("xl/worksheets/sheet1.xml").decode()
            + z.read("xl/worksheets/sheet3.xml").decode()
        )
    assert re.findall(r"<v>-?\d+\.\d{7,}</v>", xml) == []
    assert "<v>2321.26</v>" in xml or "<v>2321.260000</v>" in xml  # MAIN's kWh

    book = load_workbook(io.BytesIO(reply.content))
    assert book.sheetnames == ["明细", "账单", "电表树", "批次"]
    for ws in book.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, float) and not cell.is_date:
                    assert len(repr(cell.value).partition(".")[2]) <= 6, (ws.title, cell)
    sheet = book["明细"]
    head = [c.value for c in sheet[1]]
    assert head == ZH_HEADERS
    assert all(c.font.b for c in sheet[1]) and sheet.freeze_panes == "A2"
    col = {name: i for i, name in enumerate(head)}
    body = list(sheet.iter_rows(min_row=2))
    lines, total = body[:-1], body[-1]
    for row in lines:
        kwh, price, amount = row[col["电量（kWh）"]], row[col["单价"]], row[col["金额（元）"]]
        assert isinstance(kwh.value, (int, float)) and kwh.number_format == "#,##0.00"
        assert isinstance(amount.value, (int, float)) and amount.number_format == "#,##0.00"
        assert isinstance(price.value, (int, float)) and price.number_format == "0.00####"
        assert row[col["单位"]].value == "元/kWh"
        assert row[col["截止日（含）"]].value in (None, datetime(2026, 6, 30))
        assert row[col["截止日（含）"]].number_format == "yyyy-mm-dd"
    cents = run_cents(rig, run_id)
    assert total[0].value == "合计" and total[0].font.b
    assert Decimal(str(total[col["金额（元）"]].value)) == Decimal(cents) / 100
    assert total[col["金额（分）"]].value == cents
    assert total[col["金额（元）"]].number_format == "#,##0.00"
    assert sum(int(r[col["金额（分）"]].value) for r in lines) == cents
    # widths follow the content (a unit's Chinese name counts double)
    name_col = sheet.column_dimensions["D"].width
    assert name_col >= len("星辰科技 101") + 4
    assert 8 <= sheet.column_dimensions["A"].width <= 60

    statements = book["账单"]
    rows = list(statements.iter_rows(min_row=2, values_only=True))
    assert rows[-1][0] == "合计" and Decimal(str(rows[-1][4])) == Decimal(cents) / 100
    assert statements.freeze_panes == "A2" and statements["E2"].number_format == "#,##0.00"
    acme = next(r for r in rows if r[2] == "ACME")
    assert acme[3] == "星辰科技有限公司" and acme[1] == "星辰科技 101"

    tree = book["电表树"]
    main = next(r for r in tree.iter_rows(min_row=2) if r[0].value == "MAIN")
    assert main[1].value == "总表" and main[2].value == "总表"
    assert main[4].value == pytest.approx(2321.26) and main[4].number_format == "#,##0.00"
    assert main[7].number_format == "0.00%"

    # the run's steps in the site's local time (Asia/Shanghai, UTC+8), not UTC
    with rig.sessions() as s:
        run = s.get(ApportionRun, run_id)
        assert run is not None
        posted = as_utc(run.posted_at)
    assert posted is not None
    facts = {r[0].value: r for r in book["批次"].iter_rows(min_row=2)}
    shown = facts["过账"][1]
    local = posted.astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    assert abs(shown.value - local) < timedelta(seconds=1)
    assert shown.value - posted.replace(tzinfo=None) > timedelta(hours=7)
    assert shown.number_format == "yyyy-mm-dd hh:mm"
    assert facts["截止日（含）"][1].value == datetime(2026, 6, 30)
    assert facts["站点"][2].value == "星辰园区"


def test_xlsx_in_english(client: httpx.Client, run_id: str) -> None:
    book = load_workbook(
        io.BytesIO(client.get(f"/api/v1/runs/{run_id}/lines.xlsx?lang=en").content)
    )
    assert book.sheetnames == ["Lines", "Statements", "Meter tree", "Run"]
    assert [c.value for c in book["Lines"][1]] == EN_HEADERS
    assert list(book["Lines"].iter_rows(values_only=True))[-1][0] == "Total"


def test_exports_of_another_sites_run_are_not_found(rig: WebRig, client: httpx.Client) -> None:
    other = rig.seeded.other_site_posted  # park-b: not fin-a's site
    for ext in ("csv", "xlsx"):
        reply = client.get(f"/api/v1/runs/{other}/lines.{ext}")
        assert reply.status_code == 404 and "no run" in reply.json()["detail"]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_run_page_links_to_both_exports_in_its_language(
    rig: WebRig, client: httpx.Client, run_id: str, lang: str
) -> None:
    session = rig.web.accounts.sign_in("fin-a", "correct horse battery")
    base = str(client.base_url).rstrip("/")
    with chromium() as browser:
        context = desktop(browser)
        context.add_cookies([{"name": "mf_session", "value": session.token, "url": base}])
        page = context.new_page()
        page.goto(f"{base}/finance/runs/{run_id}?lang={lang}")
        screenshot(page, f"exports-run-page-{lang}")
        assert_accessible(page, f"exports-run-page-{lang}")
        with page.expect_download() as info:
            page.click(f'a[href="/api/v1/runs/{run_id}/lines.csv?lang={lang}"]')
        data = info.value.path().read_bytes()
        assert data.startswith(BOM)
        first = data.decode("utf-8-sig").splitlines()[0].split(",")
        assert first == (ZH_HEADERS if lang == "zh-CN" else EN_HEADERS)
        with page.expect_download() as info:
            page.click(f'a[href="/api/v1/runs/{run_id}/lines.xlsx?lang={lang}"]')
        assert info.value.suggested_filename == f"run-{run_id}.xlsx"
        book = load_workbook(io.BytesIO(info.value.path().read_bytes()))
        assert book.sheetnames[0] == ("明细" if lang == "zh-CN" else "Lines")
        context.close()
