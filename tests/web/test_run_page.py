"""Finance's run page at size: a run of more statements and nodes than one page shows a page of
each, flagged nodes first, with previous/next links that keep the language and the other
table's place; a search finds one unit's or tenant's statement by id or name; hostile paging
and search values are refused with 400 or moved to the last page, never a server error.
The JSON API still gives the whole run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from html import unescape
from typing import Any

import httpx
import pytest

from cloud.apportion.case.loading import case_from_data
from cloud.apportion.configuration import import_site
from cloud.apportion.run_page import PAGE_ROWS
from cloud.apportion.runs import create_run
from cloud.apportion.site import dump_site, parse_site
from cloud.leases.models import Tenant
from cloud.staff.accounts import Role
from tests.support import servers
from tests.support.axe import assert_accessible
from tests.support.browser import (
    PASSWORD,
    WebRig,
    desktop,
    make_rig,
    screenshot,
    serve,
    sign_in,
)

SITE = "big-park"
#: units on branch BA: with the landlord's and Z001's, more statements than one page
UNITS = PAGE_ROWS + 30
START, END = date(2026, 6, 1), date(2026, 7, 1)


def unit(i: int) -> str:
    return f"U{i:03d}"


def site_sections() -> dict[str, Any]:
    """MAIN → BA (the units U001…) and MAIN → BZ (one unit, Z001, and a loss over BZ's
    5 % cap): BZ comes after every unit of BA in tree order, past the first page."""
    units = [unit(i) for i in range(1, UNITS + 1)]
    tree: list[dict[str, Any]] = [
        {"id": "MAIN", "kind": "main", "meter": "M0", "rule": {"basis": "usage"}},
        {
            "id": "BA",
            "kind": "branch",
            "parent": "MAIN",
            "meter": "MBA",
            "rule": {"basis": "usage"},
        },
        {
            "id": "BZ",
            "kind": "branch",
            "parent": "MAIN",
            "meter": "MBZ",
            "rule": {"basis": "usage", "loss_cap": 0.05},
        },
        {"id": "Z001", "kind": "unit", "parent": "BZ", "meter": "MZ"},
    ]
    tree += [{"id": u, "kind": "unit", "parent": "BA", "meter": f"M{u}"} for u in units]
    occupancy = {u: [{"tenant": f"T{u[1:]}", "from": date(2025, 1, 1)}] for u in units}
    occupancy["Z001"] = [{"tenant": "ZED", "from": date(2025, 1, 1), "name": "泽德贸易"}]
    return {
        "site": SITE,
        "name": "大园区",
        "timezone": "Asia/Shanghai",
        "registers": ["total"],
        "units": [{"id": u, "area": 50, "name": f"商铺{u[1:]}号"} for u in units]
        + [{"id": "Z001", "area": 80, "name": "泽园"}],
        "meters": [{"id": m} for m in ("M0", "MBA", "MBZ", "MZ")]
        + [{"id": f"M{u}"} for u in units],
        "tree": tree,
        "occupancy": occupancy,
        "tariffs": [{"id": "flat", "kind": "flat", "from": date(2025, 1, 1), "price": 1.0}],
    }


def site_case() -> dict[str, Any]:
    """The site's June 2026: unit i uses 100 + i kWh, BA reads its units + 2 %, BZ reads
    Z001 + 50 % (over its cap), the main meter reads both branches."""
    used = {unit(i): 100.0 + i for i in range(1, UNITS + 1)}
    ba = round(sum(used.values()) * 1.02, 2)
    bz = 150.0
    readings = {f"M{u}": {START.isoformat(): 0.0, END.isoformat(): k} for u, k in used.items()}
    readings.update(
        {
            "MZ": {START.isoformat(): 0.0, END.isoformat(): 100.0},
            "MBA": {START.isoformat(): 0.0, END.isoformat(): ba},
            "MBZ": {START.isoformat(): 0.0, END.isoformat(): bz},
            "M0": {START.isoformat(): 0.0, END.isoformat(): round(ba + bz, 2)},
        }
    )
    data = site_sections()
    data.update(
        period={"start": START, "end": END},
        readings=readings,
        bill={"invoice": "SGCC-2026-06-BIG", "amounts": {"total": round(ba + bz, 2)}},
    )
    return data


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def big(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[WebRig, str]]:
    work = tmp_path_factory.mktemp(f"run-page-{request.param}")
    if request.param == "sqlite":
        yield from _big(make_rig(work, months=1))
        return
    server = request.getfixturevalue("postgres_server")
    with servers.fresh_postgres_database(server, "runpage") as url:
        yield from _big(make_rig(work, url=url, months=1))


def _big(rig: WebRig) -> Iterator[tuple[WebRig, str]]:
    rig.web.accounts.create_account("fin-big", PASSWORD, Role.FINANCE, [SITE])
    with rig.sessions.begin() as s:
        import_site(s, parse_site(dump_site(site_sections())), by="fin-big")
        run_id = create_run(s, case_from_data(site_case()), by="fin-big").id
        s.add(Tenant(id="T042", name="青禾_餐饮%"))  # a name the leases keep
    yield rig, run_id
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(big: tuple[WebRig, str]) -> Iterator[httpx.Client]:
    rig, _ = big
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        session = rig.web.accounts.sign_in("fin-big", PASSWORD)
        client.headers["Cookie"] = f"mf_session={session.token}"
        yield client


def statements(html: str) -> list[str]:
    """``unit/party`` of the statement rows shown, in order."""
    return re.findall(r'<tr data-statement="([^"]*)"', html)


def nodes(html: str) -> list[str]:
    return re.findall(r'<tr data-node="([^"]*)"', html)


def link(html: str, testid: str) -> str:
    found = re.search(rf'<a href="([^"]*)"[^>]*data-testid="{testid}"', html)
    assert found, f"no {testid} link"
    return unescape(found.group(1))


def text_of(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}">(.*?)</p>', html, re.S)
    assert found, f"no {testid}"
    return " ".join(re.sub(r"<[^>]+>", "", unescape(found.group(1))).split())


def test_statements_come_a_page_at_a_time(big: tuple[WebRig, str], client: httpx.Client) -> None:
    _, run_id = big
    detail = client.get(f"/api/v1/runs/{run_id}").json()
    every = [f"{s['unit']}/{s['party']}" for s in detail["statements"]]
    assert len(every) == UNITS + 2 > PAGE_ROWS  # the JSON API: the whole run, as before
    first = client.get(f"/finance/runs/{run_id}")
    assert first.status_code == 200, first.text[:300]
    assert statements(first.text) == every[:PAGE_ROWS]
    assert text_of(first.text, "statements-range") == f"第 1–{PAGE_ROWS} 份，共 {UNITS + 2} 份"
    assert 'data-testid="statements-previous"' not in first.text
    following = link(first.text, "statements-next")
    assert (
        following == f"/finance/runs/{run_id}?lang=zh-CN&stmts_start={PAGE_ROWS}#statements-title"
    )
    second = client.get(following)
    assert statements(second.text) == every[PAGE_ROWS:]
    assert text_of(second.text, "statements-range") == (
        f"第 {PAGE_ROWS + 1}–{UNITS + 2} 份，共 {UNITS + 2} 份"
    )
    assert 'data-testid="statements-next"' not in second.text
    assert link(second.text, "statements-previous").startswith(
        f"/finance/runs/{run_id}?lang=zh-CN#"
    )
    # the unit's display name from the site registry; the leases' tenant name
    assert "商铺042号" in first.text
    assert "青禾_餐饮%" in first.text


def test_links_keep_the_language_and_the_other_tables_place(
    big: tuple[WebRig, str], client: httpx.Client
) -> None:
    _, run_id = big
    page = client.get(f"/finance/runs/{run_id}?lang=en&count=50&nodes_start=50")
    assert page.status_code == 200
    assert text_of(page.text, "statements-range") == f"statements 1–50 of {UNITS + 2}"
    assert text_of(page.text, "tree-range").startswith(f"nodes 51–100 of {UNITS + 4}")
    following = link(page.text, "statements-next")
    assert "lang=en" in following and "nodes_start=50" in following and "count=50" in following
    after = client.get(following)
    assert text_of(after.text, "statements-range") == f"statements 51–100 of {UNITS + 2}"
    assert text_of(after.text, "tree-range").startswith(f"nodes 51–100 of {UNITS + 4}")
    tree_next = link(after.text, "tree-next")
    assert "stmts_start=50" in tree_next and "nodes_start=100" in tree_next
    assert "Previous page" in after.text and "Meter tree" in after.text


def test_flagged_nodes_come_first(big: tuple[WebRig, str], client: httpx.Client) -> None:
    _, run_id = big
    tree = [n["id"] for n in client.get(f"/api/v1/runs/{run_id}").json()["nodes"]]
    assert tree.index("BZ") >= PAGE_ROWS  # in tree order it would be on the second page
    page = client.get(f"/finance/runs/{run_id}").text
    shown = nodes(page)
    assert shown[0] == "BZ" and len(shown) == PAGE_ROWS
    assert 'data-flag="loss_over_cap"' in page and "上级 MAIN" in page
    assert shown[1:] == [n for n in tree if n != "BZ"][: PAGE_ROWS - 1]  # then tree order
    assert "有标记的 1 个节点排在最前" in text_of(page, "tree-range")
    only = client.get(link(page, "tree-flagged"))
    assert nodes(only.text) == ["BZ"]
    assert text_of(only.text, "tree-range").startswith("第 1–1 个节点，共 1 个")
    back = link(only.text, "tree-flagged")
    assert "flagged" not in back and nodes(client.get(back).text) == shown


def test_the_flags_list_is_bounded(
    big: tuple[WebRig, str], client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's page lists at most FLAGS_SHOWN of its flags (holding ones first) and says how
    many more there are, with the tree's "flagged only" link (here: a bound of 0)."""
    import cloud.web.finance as finance

    _, run_id = big
    flags = client.get(f"/api/v1/runs/{run_id}").json()["flags"]
    assert flags
    page = client.get(f"/finance/runs/{run_id}").text
    assert 'data-testid="flags-more"' not in page
    monkeypatch.setattr(finance, "FLAGS_SHOWN", 0)
    page = client.get(f"/finance/runs/{run_id}").text
    more = text_of(page, "flags-more")
    assert f"另有 {len(flags)} 条标记未在此列出" in more and "只看有标记的节点" in more
    assert "<li " not in page[page.index('data-testid="flags"') : page.index("flags-more")]


@pytest.mark.parametrize(
    ("search", "found"),
    [
        ("U042", ["U042/T042"]),  # the unit's id
        ("u042", ["U042/T042"]),  # case ignored
        ("商铺042", ["U042/T042"]),  # the unit's display name
        ("T043", ["U043/T043"]),  # the tenant's id
        ("青禾_餐", ["U042/T042"]),  # the tenant's name (the leases'); _ is no wildcard
        ("餐饮%", ["U042/T042"]),  # nor %
        ("泽德", ["Z001/ZED"]),  # the occupancy's tenant name
        ("landlord", ["/landlord"]),
        ("no such unit", []),
    ],
)
def test_search_finds_a_units_or_tenants_statement(
    big: tuple[WebRig, str], client: httpx.Client, search: str, found: list[str]
) -> None:
    _, run_id = big
    page = client.get(f"/finance/runs/{run_id}", params={"q": search, "lang": "en"})
    assert page.status_code == 200
    assert statements(page.text) == found
    assert text_of(page.text, "statements-range").startswith(f"Search “{search}”: {len(found)}")
    assert f'value="{search}"' in unescape(page.text)
    assert "q=" not in link(page.text, "search-clear")


def test_a_search_pages_too_and_keeps_its_amounts(
    big: tuple[WebRig, str], client: httpx.Client
) -> None:
    _, run_id = big
    detail = client.get(f"/api/v1/runs/{run_id}").json()
    cents = {f"{s['unit']}/{s['party']}": s["cents"] for s in detail["statements"]}
    page = client.get(f"/finance/runs/{run_id}?q=U0&count=20")  # U001 … U099: 99
    assert statements(page.text) == [f"{unit(i)}/T{i:03d}" for i in range(1, 21)]
    assert (
        text_of(page.text, "statements-range") == "查找“U0”：找到 99 份账单。 第 1–20 份，共 99 份"
    )
    last = client.get(f"/finance/runs/{run_id}?q=U0&count=20&stmts_start=80")
    assert statements(last.text) == [f"{unit(i)}/T{i:03d}" for i in range(81, 100)]
    assert 'data-testid="statements-next"' not in last.text
    assert "q=U0" in link(last.text, "statements-previous")
    # a search keeps whole statements: the landlord's (BZ's loss over its cap) with its total
    landlord = client.get(f"/finance/runs/{run_id}?q=landlord").text
    shown = re.search(r'data-statement="/landlord">.*?¥([\d,.]+)<', landlord, re.S)
    assert shown and shown.group(1).replace(",", "") == f"{cents['/landlord'] / 100:.2f}"


@pytest.mark.parametrize(
    "query",
    [
        "stmts_start=-1",
        "nodes_start=-5",
        "stmts_start=abc",
        "nodes_start=1e3",
        "stmts_start=99999999999999999999999",
        "stmts_start=1000001",
        "count=0",
        f"count={PAGE_ROWS + 1}",
        "count=-3",
        "flagged=maybe",
        "q=" + "x" * 65,
    ],
)
def test_hostile_values_are_refused(
    big: tuple[WebRig, str], client: httpx.Client, query: str
) -> None:
    _, run_id = big
    reply = client.get(f"/finance/runs/{run_id}?{query}")
    assert reply.status_code == 400, (query, reply.status_code, reply.text[:200])
    assert "malformed request" in reply.json()["detail"]


def test_a_start_past_the_end_shows_the_last_page(
    big: tuple[WebRig, str], client: httpx.Client
) -> None:
    _, run_id = big
    page = client.get(f"/finance/runs/{run_id}?stmts_start=1000000&nodes_start=5000&count=50")
    assert page.status_code == 200
    assert text_of(page.text, "statements-range") == f"第 101–{UNITS + 2} 份，共 {UNITS + 2} 份"
    assert text_of(page.text, "tree-range").startswith(f"第 101–{UNITS + 4} 个节点")
    nothing = client.get(f"/finance/runs/{run_id}", params={"q": "%%%", "stmts_start": 300})
    assert nothing.status_code == 200 and statements(nothing.text) == []
    assert text_of(nothing.text, "statements-range") == "查找“%%%”：找到 0 份账单。"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_both_languages_word_the_pages(
    big: tuple[WebRig, str], client: httpx.Client, lang: str
) -> None:
    _, run_id = big
    page = client.get(f"/finance/runs/{run_id}?lang={lang}&stmts_start=100").text
    words = {
        "zh-CN": ["上一页", "下一页", "查找单元或租户", "只看有标记的节点", "账单翻页"],
        "en": ["Previous page", "Next page", "Find a unit or tenant", "Flagged nodes only"],
    }[lang]
    for word in words:
        assert word in page, word
    assert f'<html lang="{lang}"' in page


@pytest.mark.timeout(300)
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_person_pages_and_searches_in_chromium(
    big: tuple[WebRig, str], client: httpx.Client, browser: Any, lang: str
) -> None:
    """The next link and the search box as a person uses them (no JavaScript); axe-core finds
    nothing serious on a page with both tables paged and on a search's page."""
    _, run_id = big
    base_url = str(client.base_url).rstrip("/")
    context = desktop(browser)
    page = context.new_page()
    try:
        sign_in(page, base_url, "fin-big", lang)
        page.goto(f"{base_url}/finance/runs/{run_id}?lang={lang}&nodes_start=100")
        assert page.locator("[data-testid=statements] tbody tr").count() == PAGE_ROWS
        assert page.locator("[data-testid=tree] tbody tr").count() == UNITS + 4 - PAGE_ROWS
        assert_accessible(page, f"run-page-{lang}")
        screenshot(page, f"run-page-paged-{lang}")
        page.get_by_test_id("statements-next").click()
        page.wait_for_url("**stmts_start=100**")
        assert "nodes_start=100" in page.url and f"lang={lang}" in page.url
        assert page.locator("[data-testid=statements] tbody tr").count() == UNITS + 2 - PAGE_ROWS
        label = {"zh-CN": "查找单元或租户", "en": "Find a unit or tenant"}[lang]
        page.get_by_label(label).fill("商铺077")
        page.get_by_label(label).press("Enter")
        page.wait_for_url("**q=**")
        rows = page.locator("[data-testid=statements] tbody tr")
        assert rows.count() == 1 and "U077" in rows.inner_text()
        assert "stmts_start" not in page.url and "nodes_start=100" in page.url
        assert_accessible(page, f"run-page-search-{lang}")
        screenshot(page, f"run-page-search-{lang}")
    finally:
        context.close()
