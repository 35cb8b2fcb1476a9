"""Every page in a real browser (Debian Chromium, headless, Playwright): every staff page an
admin reaches after signing in through the form, the tenant's page on a phone and its refusal
page load with no CSP violation and no console error; the printable statement's button still
prints (its script is a static file now), and the run page's tree is still indented (classes,
not style attributes). axe-core finds nothing serious or critical on any of them, on a phone
and a desktop, in Chinese and in English."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.axe import assert_accessible
from tests.support.browser import (
    PASSWORD,
    WebRig,
    desktop,
    make_rig,
    phone,
    serve,
)

pytestmark = pytest.mark.timeout(180)

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push([e.violatedDirective, e.blockedURI, e.sourceFile, e.lineNumber].join(" "));
});
window.__printed = 0;
window.print = () => { window.__printed += 1; };
"""


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("csp"), months=2)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def staff_pages(rig: WebRig) -> list[str]:
    """Every staff page of the seeded registry, each kind once (GET routes answering HTML)."""
    run, draft, held = rig.seeded.latest, rig.seeded.draft, rig.seeded.held
    return [
        "/",
        "/finance/runs",
        f"/finance/runs/{run}",
        f"/finance/runs/{draft}",
        f"/finance/runs/{held}",
        f"/finance/runs/{draft}/review",
        f"/finance/runs/{run}/void",
        f"/finance/runs/{run}/statements/A101/ACME",
        f"/finance/runs/{run}/print",
        "/finance/disputes",
        "/finance/close",
        "/finance/risk",
        "/leases",
        "/queue",
        "/queue/overdue",
        "/offers",
        "/leases/import",
        "/policies",
        "/payments/bank",
        "/payments/credit-notes",
        "/reports",
        "/reports/occupancy",
        "/reports/expiring",
        "/reports/aging",
        "/reports/collections?from=2026-01-01&to=2026-03-31",
        "/engineer/gateways",
        "/engineer/gateways/gw-a",
        "/engineer/claim-tokens",
        "/admin/accounts",
        "/admin/replacements",
        "/account/password",
    ]


def sign_in(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


class Watched:
    """A page whose console errors and CSP violations are collected."""

    def __init__(self, context: Any) -> None:
        context.add_init_script(WATCH)
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def visit(self, url: str) -> list[str]:
        """Open ``url``; the violations and errors seen there."""
        self.errors.clear()
        reply = self.page.goto(url)
        assert reply is not None and reply.status < 400, (url, reply and reply.status)
        self.page.wait_for_load_state("load")
        return [*self.page.evaluate("window.__csp"), *self.errors]


def test_every_staff_page_loads_without_a_csp_violation(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    context = desktop(browser)
    watched = Watched(context)
    page = watched.page
    sign_in(page, base_url)
    run = rig.seeded.latest
    pages = [*staff_pages(rig), "/finance/runs?lang=en"]
    problems = {path: found for path in pages if (found := watched.visit(base_url + path))}
    assert not problems, problems
    # the print button's script is a static file and still works
    watched.visit(f"{base_url}/finance/runs/{run}/statements/A101/ACME")
    page.click("[data-action=print]")
    assert page.evaluate("window.__printed") == 1
    # the tree keeps its indentation without style attributes
    watched.visit(f"{base_url}/finance/runs/{run}")
    pads = page.eval_on_selector_all(
        "[data-testid=tree] td[class^=depth-]",
        "cells => cells.map(c => [c.className, parseFloat(getComputedStyle(c).paddingLeft)])",
    )
    by_depth = {int(name.split("-")[1]): px for name, px in pads}
    widths = [by_depth[d] for d in sorted(by_depth)]
    assert len(widths) >= 2 and widths == sorted(set(widths)), pads
    assert "style=" not in page.content()
    context.close()


def test_tenant_pages_on_a_phone_load_without_a_csp_violation(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    context = phone(browser)
    watched = Watched(context)
    link = rig.link(rig.seeded.latest)
    for path in (link, f"{link}?lang=en"):
        assert watched.visit(base_url + path) == [], path
        assert watched.page.locator("svg.history").count() == 1  # the inline SVG chart shows
    watched.errors.clear()
    refused = watched.page.goto(base_url + link.replace("/A101/", "/A102/"))
    assert refused is not None and refused.status == 403
    errors = [e for e in watched.errors if "status of 403" not in e]  # the refusal itself
    assert watched.page.evaluate("window.__csp") == [] and errors == []
    context.close()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("device", ["phone", "desktop"])
def test_axe_finds_nothing_serious_on_any_page(
    rig: WebRig, base_url: str, browser: Any, device: str, lang: str
) -> None:
    context = (phone if device == "phone" else desktop)(browser)
    page = context.new_page()
    link = rig.link(rig.seeded.latest)
    for path in ("/login", link, link.replace("/A101/", "/A102/")):  # signed out
        page.goto(f"{base_url}{path}?lang={lang}")
        assert_accessible(page, f"sweep-{device}-{lang}-{path.strip('/').split('/')[0]}")
    sign_in(page, base_url)
    for path in staff_pages(rig):
        reply = page.goto(f"{base_url}{path}{'&' if '?' in path else '?'}lang={lang}")
        assert reply is not None and reply.status < 400, (path, reply and reply.status)
        name = path.strip("/").replace("/", "-") or "home"
        assert_accessible(page, f"sweep-{device}-{lang}-{name[:60]}")
    context.close()
