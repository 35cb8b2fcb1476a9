"""The printable 分摊明细确认单 in Debian Chromium: each tenant statement of a realistic run
(time-of-use, CT meter, commons, losses, a move-out and a move-in: 16–20 lines each) prints to
exactly one A4 page in Chinese and in English; rasterised at 150 dpi (pdftoppm) its QR code
decodes (zbarimg) to exactly the tenant's link; the PDF's text (pdftotext) carries the amount
in figures and in capitals, the property company, the due date, reviewer and approver; the batch
print of the run is one PDF with one page per tenant statement. The print pages pass axe-core
on a phone and a desktop, in both languages; screenshots and PDFs are kept as artefacts."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud.apportion.case.loading import case_from_data
from cloud.apportion.configuration import import_site
from cloud.apportion.runs import approve_run, create_run, post_run, review_run
from cloud.apportion.site import dump_site, parse_site
from cloud.staff.accounts import Role, SessionKind
from cloud.statements.capitals import rmb_capitals
from cloud.statements.links import StatementKey
from tests.support.axe import assert_accessible
from tests.support.browser import (
    ARTEFACTS,
    PASSWORD,
    WebRig,
    chromium,
    desktop,
    make_rig,
    phone,
    require_chromium,
    screenshot,
    serve,
)
from tests.support.servers import missing_server
from tests.web.print_park import PROPERTY, SITE, park_case, park_sections

pytestmark = pytest.mark.timeout(300)
#: (user name, display name): who creates, reviews and approves the park's run
STAFF = [("fin-x0", "张敏"), ("fin-x1", "王芳"), ("fin-x2", "李强")]


def require_poppler_zbar() -> None:
    for tool, package in (
        ("pdfinfo", "poppler-utils"),
        ("pdftoppm", "poppler-utils"),
        ("pdftotext", "poppler-utils"),
        ("zbarimg", "zbar-tools"),
    ):
        if shutil.which(tool) is None:
            missing_server(f"{tool} ({package})", "chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    require_poppler_zbar()
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def park(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebRig, str]]:
    rig = make_rig(tmp_path_factory.mktemp("print"), months=1)
    for name, display in STAFF:
        rig.web.accounts.create_account(name, PASSWORD, Role.FINANCE, [SITE], display_name=display)
    with rig.sessions.begin() as s:
        import_site(s, parse_site(dump_site(park_sections())), by="fin-x0")
        run = create_run(s, case_from_data(park_case()), by="fin-x0")
        review_run(s, run.id, by="fin-x1")
        approve_run(s, run.id, by="fin-x2")
        post_run(s, run.id, by="fin-x2", key=rig.key)
        run_id = run.id
    yield rig, run_id
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(park: tuple[WebRig, str]) -> Iterator[str]:
    with serve(park[0].app) as url:
        yield url


def signed_in(context: Any, rig: WebRig, base_url: str, username: str = "fin-x0") -> Any:
    session = rig.web.accounts.sign_in(username, PASSWORD)
    context.add_cookies([{"name": "mf_session", "value": session.token, "url": base_url}])
    return context.new_page()


def tenant_statements(rig: WebRig, run_id: str) -> list[tuple[str, str, int]]:
    """(unit, tenant, cents) of the run's tenant statements, by unit and tenant."""
    token = rig.web.accounts.sign_in("fin-x0", PASSWORD).token
    fin = rig.web.accounts.principal(token, SessionKind.COOKIE)
    assert fin is not None
    detail = rig.web.runs.run_detail(fin, run_id)
    return [(s.unit, s.party, s.cents) for s in detail.statements if s.unit]


def print_pdf(page: Any, name: str) -> Path:
    page.emulate_media(media="print")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.pdf"
    page.pdf(path=str(path), format="A4")
    page.emulate_media(media="screen")
    return path


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    match = re.search(r"^Pages:\s+(\d+)$", info.stdout, re.M)
    assert match, info.stdout
    return int(match.group(1))


def pdf_text(path: Path, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    out = subprocess.run(
        ["pdftotext", "-layout", *pages, str(path), "-"], capture_output=True, text=True, check=True
    )
    return out.stdout


def qr_codes(path: Path, tmp: Path) -> list[list[str]]:
    """Each page rasterised at 150 dpi; the QR codes zbarimg decodes on it, page by page."""
    prefix = tmp / path.stem
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(path), str(prefix)], check=True)
    out = []
    for image in sorted(tmp.glob(f"{path.stem}-*.png")):
        found = subprocess.run(
            ["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(image)],
            capture_output=True,
            text=True,
        )
        out.append([line for line in found.stdout.splitlines() if line])
    return out


def link_url(rig: WebRig, base_url: str, run_id: str, unit: str, party: str) -> str:
    return base_url + rig.web.links.link_for(StatementKey(run_id, unit, party)).path()


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_each_statement_prints_on_one_page_with_a_qr_that_scans(
    park: tuple[WebRig, str], base_url: str, browser: Any, lang: str, tmp_path: Path
) -> None:
    rig, run_id = park
    statements = tenant_statements(rig, run_id)
    assert len(statements) == 8  # A103 twice: the tenant who left and the one who came
    context = desktop(browser)
    page = signed_in(context, rig, base_url)
    posted = date.today()  # posted by the fixture just now (Shanghai's day, as the slip says)
    try:
        for unit, party, cents in statements:
            page.goto(f"{base_url}/finance/runs/{run_id}/statements/{unit}/{party}?lang={lang}")
            assert page.locator("[data-testid=capitals]").inner_text() == rmb_capitals(cents)
            name = f"print-{lang}-{unit}-{party}"
            pdf = print_pdf(page, name)
            assert pdf_pages(pdf) == 1, f"{unit}/{party} ({lang}) runs over one page"
            url = link_url(rig, base_url, run_id, unit, party)
            assert qr_codes(pdf, tmp_path) == [[url]], f"{unit}/{party}: the QR does not scan"
            text = pdf_text(pdf)
            flat = squash(text)
            assert rmb_capitals(cents) in flat
            assert squash(f"¥{cents // 100}.{cents % 100:02d}") in flat.replace(",", "")
            assert PROPERTY["company"] in flat and squash(PROPERTY["phone"]) in flat
            assert party in flat and "王芳" in flat and "李强" in flat
            due = [
                (posted + timedelta(days=PROPERTY["due_days"] + d)).isoformat() for d in (-1, 0, 1)
            ]
            assert any(d in flat for d in due), text
            if lang == "zh-CN":
                assert "分摊明细确认单" in flat and "租户确认（签字/盖章）" in flat
            else:
                assert "confirmationslip" in flat and "Tenant(signature/seal)" in flat
        screenshot(page, f"print-{lang}-desktop")
    finally:
        context.close()


def test_batch_print_is_one_pdf_with_a_page_per_statement(
    park: tuple[WebRig, str], base_url: str, browser: Any, tmp_path: Path
) -> None:
    rig, run_id = park
    statements = tenant_statements(rig, run_id)
    context = desktop(browser)
    page = signed_in(context, rig, base_url)
    try:
        page.goto(f"{base_url}/finance/runs/{run_id}?lang=zh-CN")
        page.click("[data-testid=print-all]")
        page.wait_for_url(f"{base_url}/finance/runs/{run_id}/print*")
        assert page.locator("[data-testid=sheet]").count() == len(statements)
        screenshot(page, "print-batch-zh-CN")
        pdf = print_pdf(page, "print-batch-zh-CN")
        assert pdf_pages(pdf) == len(statements) == 8
        codes = qr_codes(pdf, tmp_path)
        expected = [[link_url(rig, base_url, run_id, u, p)] for u, p, _ in statements]
        assert codes == expected
        for number, (_unit, party, cents) in enumerate(statements, start=1):
            flat = squash(pdf_text(pdf, number))
            assert party in flat and rmb_capitals(cents) in flat, f"page {number}"
    finally:
        context.close()


def test_batch_print_goes_in_batches_of_at_most_a_hundred(
    park: tuple[WebRig, str], base_url: str, browser: Any
) -> None:
    """A large site prints in batches (a 10,000-unit run is not one 10,000-page request):
    ``start`` and ``count`` pick the slips, the page says which and links the next batch."""
    rig, run_id = park
    statements = tenant_statements(rig, run_id)
    context = desktop(browser)
    page = signed_in(context, rig, base_url)
    try:
        page.goto(f"{base_url}/finance/runs/{run_id}/print?start=3&count=3&lang=zh-CN")
        assert page.get_by_test_id("slip-range").inner_text() == "第 4–6 份，共 8 份"
        assert printed(page, statements[3:6])
        page.get_by_test_id("slip-next").click()
        page.wait_for_url("**start=6**")
        assert printed(page, statements[6:])
        assert page.get_by_test_id("slip-next").count() == 0  # the last batch
        page.get_by_test_id("slip-previous").click()
        page.wait_for_url("**start=3**")
        assert printed(page, statements[3:6])
        too_many = page.goto(f"{base_url}/finance/runs/{run_id}/print?count=101")
        assert too_many is not None and too_many.status == 400  # at most 100 a batch
    finally:
        context.close()


def printed(page: Any, expected: list[tuple[str, str, int]]) -> bool:
    """Whether the page's sheets are ``expected``'s statements, in order (each sheet names
    its unit and its tenant)."""
    texts = page.locator("[data-testid=sheet]").all_inner_texts()
    return len(texts) == len(expected) and all(
        unit in text and party in text
        for text, (unit, party, _c) in zip(texts, expected, strict=True)
    )


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_print_pages_are_accessible(
    park: tuple[WebRig, str], base_url: str, browser: Any, lang: str, device: str
) -> None:
    rig, run_id = park
    context = (phone if device == "phone" else desktop)(browser)
    page = signed_in(context, rig, base_url)
    try:
        for kind, path in (
            ("one", f"/finance/runs/{run_id}/statements/A102/LANJING-CONSULT"),
            ("batch", f"/finance/runs/{run_id}/print"),
        ):
            page.goto(f"{base_url}{path}?lang={lang}")
            assert page.locator("[data-testid=qr] svg").count() >= 1
            assert_accessible(page, f"print-{kind}-{device}-{lang}")
            screenshot(page, f"print-{kind}-{device}-{lang}")
    finally:
        context.close()
