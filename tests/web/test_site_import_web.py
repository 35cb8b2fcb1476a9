"""A site's set-up through the web (站点设置): the site file checked (every error named,
nothing stored) and imported, the same file again changing nothing, the workbook downloaded,
edited and imported again; finance and engineers only for their sites, a new site only by an
admin; the page in Chromium with axe. The command line's ``site import`` runs the same code
(tests/apportion/test_site_import.py)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openpyxl import load_workbook
from sqlalchemy import select

from cloud.apportion.models import Unit
from cloud.staff.models import AuditEntry
from tests.support.axe import assert_accessible
from tests.support.browser import WebRig, desktop, make_rig, serve, sign_in

CASES = Path(__file__).parents[1] / "cases"
DROP = ("period", "readings", "bill", "drivers", "history")


def site_text(site: str = "park-a", **changes: Any) -> bytes:
    """The basic case as a site file of ``site`` (the case's period data dropped)."""
    raw = yaml.safe_load((CASES / "basic.yaml").read_text())
    raw = {k: v for k, v in raw.items() if k not in DROP} | {"site": site, **changes}
    return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False).encode()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("site-import"), months=1)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def post(client: httpx.Client, rig: WebRig, who: str, data: bytes, name: str, dry: bool):
    return client.post(
        f"/api/v1/sites/import?dry_run={str(dry).lower()}",
        files={"file": (name, data, "application/octet-stream")},
        headers={"Authorization": f"Bearer {rig.token(client, who)}"},
    )


def test_the_site_file_is_checked_imported_and_downloaded(rig: WebRig, base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as c:
        dry = post(c, rig, "fin-a", site_text(), "park-a.yaml", True)
        assert dry.status_code == 200, dry.text
        assert dry.json()["dry_run"] and dry.json()["created"]["unit"] == 3
        with rig.sessions() as s:
            assert s.scalar(select(Unit).where(Unit.id == "A103")) is None  # nothing stored
        done = post(c, rig, "fin-a", site_text(), "park-a.yaml", False)
        assert done.status_code == 200 and not done.json()["dry_run"], done.text
        again = post(c, rig, "fin-a", site_text(), "park-a.yaml", False)
        assert again.json()["changed"] is False
        with rig.sessions() as s:
            assert s.get(Unit, "A103").area_m2 == 100
            logged = s.scalars(select(AuditEntry).where(AuditEntry.subject == "site:park-a")).all()
        assert [(a.actor, a.action) for a in logged] == [("fin-a", "site.import")]
        assert "'unit': 3" in logged[0].detail
        # the workbook: downloaded, a unit's area changed, imported again
        auth = {"Authorization": f"Bearer {rig.token(c, 'eng-a')}"}
        got = c.get("/api/v1/sites/export?site=park-a&format=xlsx", headers=auth)
        assert got.status_code == 200 and "site-park-a.xlsx" in got.headers["content-disposition"]
        book = load_workbook(io.BytesIO(got.content))
        units = next(ws for ws in book.worksheets if ws.max_row >= 4 and "A103" in str(
            [c.value for c in ws["A"]]))  # fmt: skip
        area = next(i for i, c in enumerate(units[1], 1) if "area" in str(c.value).casefold())
        row = next(r for r in range(2, units.max_row + 1) if units.cell(r, 1).value == "A103")
        units.cell(row, area).value = 120
        out = io.BytesIO()
        book.save(out)
        changed = post(c, rig, "eng-a", out.getvalue(), "park-a.xlsx", False)
        assert changed.status_code == 200, changed.text
        assert changed.json()["updated"] == {"unit": 1}
        # a workbook naming another site is refused before that site's set-up is read
        site_sheet = book.worksheets[0]
        cell = next(c for row in site_sheet.iter_rows() for c in row if c.value == "park-a")
        cell.value = "park-b"
        other = io.BytesIO()
        book.save(other)
        refused = post(c, rig, "eng-a", other.getvalue(), "park-b.xlsx", True)
        assert refused.status_code == 403 and "not one of yours" in refused.text
        yaml_copy = c.get("/api/v1/sites/export?site=park-a&format=yaml", headers=auth)
        assert yaml.safe_load(yaml_copy.text)["site"] == "park-a"
        assert c.get("/api/v1/sites/export?site=park-b", headers=auth).status_code == 404
    with rig.sessions() as s:
        assert s.get(Unit, "A103").area_m2 == 120


@pytest.mark.parametrize(
    ("who", "data", "status", "says"),
    [
        ("fin-a", site_text(units="not a list"), 422, "units"),
        ("fin-a", b"site: park-a\nsite: park-b\n", 422, "appears twice"),
        ("fin-a", b"\xff\xfe not text", 422, "not UTF-8"),
        ("fin-a", site_text("park-b"), 403, "not one of yours"),
        ("eng-a", site_text("park-new"), 403, "only an admin adds a site"),
        # an admin may add a site: past the role, its items are checked (ids are global)
        ("admin", site_text("park-new"), 422, "'U1' belongs to site 'park-a'"),
    ],
)
def test_refused_files_name_the_item_and_store_nothing(
    rig: WebRig, base_url: str, who: str, data: bytes, status: int, says: str
) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as c:
        reply = post(c, rig, who, data, "site.yaml", True)
    assert reply.status_code == status and says in reply.text, reply.text


def test_roles_and_bounds(rig: WebRig, base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as c:
        assert c.post(
            "/api/v1/sites/import", files={"file": ("s.yaml", b"x")}
        ).status_code == 401  # fmt: skip
        big = post(c, rig, "admin", b"#" * (8 * 1024 * 1024 + 1), "big.yaml", True)
        assert big.status_code == 413 and "8 MiB" in big.text


def test_the_page_checks_then_imports(browser: Any, rig: WebRig, base_url: str, tmp_path) -> None:
    path = tmp_path / "park-a.yaml"
    units = [
        {"id": "A101", "area": 61, "building": "A", "floor": 1},
        {"id": "A102", "area": 40, "building": "A", "floor": 1},
        {"id": "A103", "area": 120, "building": "A", "floor": 2},
    ]
    path.write_bytes(site_text(units=units))
    ctx = desktop(browser)
    page = ctx.new_page()
    sign_in(page, base_url, "fin-a", "zh-CN")
    page.goto(f"{base_url}/sites/import?lang=zh-CN")
    page.locator("[data-testid=site-file]").set_input_files(str(path))
    page.locator("[data-testid=site-check]").click()
    assert "检查通过" in page.locator("[data-testid=site-summary]").inner_text()
    unit_row = page.locator("[data-testid=site-counts] tr[data-kind=unit]").inner_text()
    assert "单元" in unit_row and "1" in unit_row, unit_row
    assert_accessible(page, "site-import-checked")
    page.locator("[data-testid=site-import]").click()
    assert "已导入" in page.locator("[data-testid=site-summary]").inner_text()
    with rig.sessions() as s:
        assert s.get(Unit, "A101").area_m2 == 61
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"site: park-a\nsite: park-a\n")
    page.locator("[data-testid=site-file]").set_input_files(str(bad))
    page.locator("[data-testid=site-check]").click()
    assert "appears twice" in page.locator("[data-testid=site-errors]").inner_text()
    assert_accessible(page, "site-import-refused")
    ctx.close()
