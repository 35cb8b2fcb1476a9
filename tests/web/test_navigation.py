"""The header's navigation and the home page offer each role exactly the pages its routes
let it open (cloud/web/navigation.py over the route policies): signed in as every role,
each link in the header answers 200 for that role, the home page lists the same pages, and
no page the role may not open is offered."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from cloud.staff.accounts import SessionKind
from cloud.web.navigation import NAV
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.support.lease_scope import seed_leases
from tests.web.test_web_authorization import all_routes

#: one account of each role (make_rig's and seed_leases' accounts)
ROLES = {
    "admin": "admin",
    "finance": "fin-a",
    "engineer": "eng-a",
    "manager": "mgr-a",
    "supervisor": "sup-a",
    "legal": "legal-a",
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("navigation"), months=1)
    seed_leases(rig.sessions, PASSWORD)
    yield rig
    rig.sessions.kw["bind"].dispose()


def test_every_entry_is_a_page_route(rig: WebRig) -> None:
    pages = {name: path for name, path, methods in all_routes(rig.app) if "GET" in methods}
    assert [(path, pages.get(route)) for path, _, route in NAV] == [(p, p) for p, _, _ in NAV]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_each_role_is_offered_the_pages_it_may_open(rig: WebRig, role: str) -> None:
    token = rig.web.accounts.sign_in(ROLES[role], PASSWORD, SessionKind.COOKIE).token
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=60) as c:
        c.cookies.set("mf_session", token)
        home = c.get("/?lang=en")
        assert home.status_code == 200, home.text[:200]
        nav = re.search(r"<nav>(.*?)</nav>", home.text, re.S)
        assert nav is not None
        offered = re.findall(r'href="([^"?]+)\?lang=en"', nav.group(1))
        listed = re.search(r'data-testid="home-links">(.*?)</ul>', home.text, re.S)
        assert listed is not None
        assert re.findall(r'href="([^"?]+)\?lang=en"', listed.group(1))[: len(offered)] == offered
        for path, _, _ in NAV:
            reply = c.get(f"{path}?lang=en", follow_redirects=False)
            if path in offered:
                assert reply.status_code == 200, (role, path, reply.status_code)
            else:
                assert reply.status_code in (403, 404), (role, path, reply.status_code)
    assert offered, role


def _attention(rig: WebRig, who: str) -> dict[str, int]:
    token = rig.web.accounts.sign_in(who, PASSWORD, SessionKind.COOKIE).token
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=60) as c:
        c.cookies.set("mf_session", token)
        page = c.get("/?lang=en").text
    found = re.search(r'data-testid="attention">(.*?)</ul>', page, re.S)
    if found is None:
        assert 'data-testid="attention-none"' in page
        return {}
    items = re.findall(r'data-key="([a-z_]+)"><a href="[^"]+">(?:<[^>]+>)?(\d+)', found.group(1))
    return {key: int(n) for key, n in items}


def test_the_home_page_counts_what_waits_for_each_person(rig: WebRig) -> None:
    """The seeded runs: park-a's May draft waits for review (finance of park-a), park-b's
    held run for finance of park-b; park-a's gateway never reported (its engineer); legal
    sees no run."""
    assert _attention(rig, "fin-a").get("overview_runs_review") == 1
    assert "overview_runs_held" not in _attention(rig, "fin-a")
    assert _attention(rig, "fin-b").get("overview_runs_held") == 1
    admin = _attention(rig, "admin")
    assert (admin.get("overview_runs_held"), admin.get("overview_runs_review")) == (1, 1)
    assert _attention(rig, "eng-a") == {"overview_gateways_offline": 1}
    assert not any(k.startswith("overview_runs") for k in _attention(rig, "legal-a"))
