"""The authorization matrix: every route of the app × every caller (no login, each role, each
role of another site or another building, a tenant link) is allowed or refused as the policy
table says, on SQLite and PostgreSQL; building scope filters lists and hides other buildings'
leases; each role sees a lease's sensitive fields as the visibility policy says; and no tenant
link reads another unit's data."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import text
from starlette.routing import Mount, Route

from cloud.staff.accounts import SessionKind
from cloud.statements.links import StatementKey
from cloud.web.authz import POLICIES, Access
from tests.support import servers
from tests.support.authz_samples import Samples
from tests.support.bank_samples import ON_LEASE
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.support.deposit_samples import ON_REFUND
from tests.support.lease_scope import SEEDED, seed_leases
from tests.support.ledger_samples import LEASE_OPERATIONS
from tests.support.queue_samples import (
    OFFER_RECORD,
    QUEUE_ITEM,
    QUEUE_ITEM_HOLDERS,
    seed_queue_samples,
)


def all_routes(app: FastAPI) -> Iterator[tuple[str, str, frozenset[str]]]:
    """(name, path, methods) of every route, routers included (FastAPI ≥ 0.16x keeps
    included routers as their own route objects)."""
    try:
        from fastapi.routing import iter_route_contexts

        contexts = list(iter_route_contexts(app.routes))
        routes = [c.original_route for c in contexts]
    except ImportError:  # older FastAPI: the routers' routes are the app's
        routes = list(app.routes)
    for route in routes:
        if isinstance(route, APIRoute | Route):
            yield route.name, route.path, frozenset(route.methods or ())
        elif isinstance(route, Mount):
            yield route.name or "", route.path + "/{path}", frozenset({"GET"})
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")


@dataclass(frozen=True)
class Caller:
    """Who calls: a role of a site, an admin, nobody; with an API token and a browser
    session (cookie + CSRF token)."""

    name: str
    role: str | None
    site: str | None
    building: str | None = None  # None: the whole site
    token: str = ""
    cookie: str = ""
    csrf: str = ""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rig(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[WebRig]:
    """The seeded registry (runs, gateways, accounts, leases of tests/support/lease_scope.py)
    on SQLite, then on PostgreSQL."""
    work = tmp_path_factory.mktemp(f"authz-{request.param}")
    if request.param == "sqlite":
        rig = make_rig(work)
        seed_leases(rig.sessions, PASSWORD)
        rig.queue_samples = seed_queue_samples(rig.sessions)  # type: ignore[attr-defined]
        yield rig
        rig.sessions.kw["bind"].dispose()
        return
    server = request.getfixturevalue("postgres_server")
    with servers.fresh_postgres_database(server, "authz") as url:
        rig = make_rig(work, url=url)
        seed_leases(rig.sessions, PASSWORD)
        rig.queue_samples = seed_queue_samples(rig.sessions)  # type: ignore[attr-defined]
        yield rig
        rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def sign_in(rig: WebRig, username: str) -> tuple[str, str, str]:
    api = rig.web.accounts.sign_in(username, PASSWORD, SessionKind.API)
    browser = rig.web.accounts.sign_in(username, PASSWORD, SessionKind.COOKIE)
    return api.token, browser.token, browser.csrf


@pytest.fixture(scope="module")
def callers(rig: WebRig) -> list[Caller]:
    out = [Caller("anonymous", None, None)]
    for username, role, site, building in (
        ("admin", "admin", None, None),
        ("fin-a", "finance", "park-a", None),
        ("eng-a", "engineer", "park-a", None),
        ("fin-b", "finance", "park-b", None),
        ("eng-b", "engineer", "park-b", None),
        ("mgr-a", "manager", "park-a", "A"),
        ("mgr-ab", "manager", "park-a", "B"),  # park-a, but another building
        ("sup-a", "supervisor", "park-a", None),
        ("legal-a", "legal", "park-a", None),
        ("mgr-p", "manager", "park-b", "A"),  # building A, but of park-b
    ):
        token, cookie, csrf = sign_in(rig, username)
        out.append(Caller(username, role, site, building, token, cookie, csrf))
    return out


#: which roles each access admits (the specification the matrix checks the app against)
ADMITS = {
    Access.STAFF: {"admin", "finance", "engineer", "manager", "supervisor", "legal"},
    Access.FINANCE: {"admin", "finance"},
    Access.ENGINEER: {"admin", "engineer"},
    Access.ADMIN: {"admin"},
    Access.LEASES: {"admin", "finance", "manager", "supervisor", "legal"},
    Access.RISK: {"admin", "finance", "manager", "supervisor"},
    Access.PAYMENTS: {"admin", "finance", "manager", "supervisor"},
    Access.QUEUE: {"admin", "manager", "supervisor", "legal"},
    Access.OVERSIGHT: {"admin", "supervisor"},
    Access.OFFERS_READ: {"admin", "finance", "manager", "supervisor"},
    Access.OFFERS: {"admin", "manager", "supervisor"},
    Access.APPROVALS: {"admin", "supervisor"},
    Access.LEDGER: {"admin", "manager", "supervisor"},
    Access.POLICIES: {"admin", "supervisor"},
    Access.CREDIT_APPROVAL: {"admin", "finance", "supervisor"},
    Access.REPORTS: {"admin", "finance", "manager", "supervisor", "legal"},
    Access.PORTFOLIO_REPORTS: {"admin", "finance", "manager", "supervisor"},
    Access.SITES: {"admin", "finance", "engineer"},
}
#: routes acting on one record of park-a (run, statement, dispute, gateway, claim for it)
SITE_SCOPED = {
    "run_page",
    "run_confirm_page",
    "run_action_form",
    "statement_print_page",
    "run_print_page",
    "dispute_resolve_form",
    "api_run",
    "api_run_action",
    "api_run_statement",
    "api_run_lines_csv",
    "api_run_lines_xlsx",
    "api_dispute_resolve",
    "gateway_page",
    "gateway_command_form",
    "claim_token_form",
    "api_gateway",
    "api_gateway_command",
    "api_claim_token",
    "gateway_revoke_page",
    "gateway_revoke_form",
    "api_gateway_revoke",
    "lease_page",
    "api_lease",
    "api_lease_history",
    "api_lease_payment",
    "lease_payment_form",
    *QUEUE_ITEM,
    *OFFER_RECORD,
    *LEASE_OPERATIONS,
    "api_lease_policy",
    "api_lease_policy_overrides",
    *ON_LEASE,
    "api_credit_note_approve",
    "api_credit_note_reject",
    "credit_note_decide_form",
    *ON_REFUND,
}
#: routes acting on one record of building A of park-a (lease L-A1, its task; offer on L-A2)
BUILDING_SCOPED = {
    "lease_page",
    "api_lease",
    "api_lease_history",
    "api_lease_payment",
    "lease_payment_form",
    *QUEUE_ITEM,
    *OFFER_RECORD,
    *LEASE_OPERATIONS,
    "api_lease_policy",
    "api_lease_policy_overrides",
    *ON_LEASE,
    *ON_REFUND,
}


def call(
    client: httpx.Client,
    rig: WebRig,
    caller: Caller,
    name: str,
    method: str,
    path: str,
    samples: Samples,
) -> httpx.Response:
    kwargs = samples.body(name)
    headers: dict[str, str] = {}
    cookies: list[str] = []
    token, cookie, csrf = caller.token, caller.cookie, caller.csrf
    if caller.role and name in ("api_sign_out", "logout_form"):
        token, cookie, csrf = sign_in(rig, caller.name)  # these end the session they use
    if caller.role and path.startswith("/api/"):
        headers["Authorization"] = f"Bearer {token}"
    elif caller.role:
        cookies.append(f"mf_session={cookie}")
        if "data" in kwargs or method != "GET":
            kwargs.setdefault("data", {})["csrf"] = csrf
    if name == "login_form":
        cookies.append("mf_login_csrf=double-submit")
        kwargs["data"]["csrf"] = "double-submit"
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    client.cookies.clear()  # what an earlier caller was given (a sign-in) is not this one's
    return client.request(method, path, headers=headers, **kwargs)


def expected(name: str, caller: Caller) -> str:
    """``allowed``, ``unauthenticated``, ``forbidden`` or ``out_of_scope``."""
    access = POLICIES[name]
    if access in (Access.PUBLIC, Access.TENANT_LINK):
        return "allowed"
    if caller.role is None:
        return "unauthenticated"
    if caller.role not in ADMITS[access]:
        return "forbidden"
    if name in SITE_SCOPED and caller.role != "admin" and caller.site != "park-a":
        return "out_of_scope"
    if name in BUILDING_SCOPED and caller.building not in (None, "A"):
        return "out_of_scope"
    if name in QUEUE_ITEM and caller.name not in QUEUE_ITEM_HOLDERS:
        return "out_of_scope"
    return "allowed"


def outcome(reply: httpx.Response) -> str:
    if reply.status_code == 401 or (
        reply.status_code == 303 and reply.headers["location"].startswith("/login?next=")
    ):
        return "unauthenticated"
    if reply.status_code == 403:
        return "forbidden"
    if reply.status_code == 404:
        return "not_found"
    return "allowed"


def test_every_route_declares_an_access_policy(rig: WebRig) -> None:
    names = [name for name, _, _ in all_routes(rig.app)]
    assert len(names) == len(set(names)), "route names must be unique (they key the policies)"
    assert sorted(set(names) - POLICIES.keys()) == [], "routes without a policy"
    assert sorted(POLICIES.keys() - set(names)) == [], "policies of routes that do not exist"


def test_authorization_matrix(rig: WebRig, callers: list[Caller], base_url: str) -> None:
    samples = Samples(rig)
    mismatches = []
    checked = 0
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as client:
        for name, template, methods in sorted(all_routes(rig.app)):
            for method in sorted(methods - {"HEAD"}):
                path = samples.path(template)
                for caller in callers:
                    reply = call(client, rig, caller, name, method, path, samples)
                    want, got = expected(name, caller), outcome(reply)
                    if want == "out_of_scope" and name in BUILDING_SCOPED:
                        ok = got == "not_found"  # a lease out of scope does not exist
                    elif want == "out_of_scope":
                        ok = got in ("not_found", "forbidden")
                    else:
                        ok = got == want
                    assert reply.status_code < 500, (name, caller.name, reply.text[:500])
                    checked += 1
                    if not ok:
                        mismatches.append(
                            f"{method} {template} as {caller.name}: expected "
                            f"{want}, got {reply.status_code} {reply.text[:120]}"
                        )
    assert not mismatches, "\n".join(mismatches)
    pairs = sum(len(m - {"HEAD"}) for _, _, m in all_routes(rig.app))
    assert pairs >= 44 and checked == pairs * len(callers)


def test_lists_show_only_the_callers_sites(
    rig: WebRig, callers: list[Caller], base_url: str
) -> None:
    by_name = {c.name: c for c in callers}
    with httpx.Client(base_url=base_url) as c:
        for who, site in (("fin-a", "park-a"), ("fin-b", "park-b")):
            auth = {"Authorization": f"Bearer {by_name[who].token}"}
            runs = c.get("/api/v1/runs", headers=auth).json()
            assert runs and {r["site"] for r in runs} == {site}
            disputes = c.get("/api/v1/disputes?status=all", headers=auth).json()
            assert {d["site"] for d in disputes} <= {site}
        for who, site, gateway, other in (
            ("eng-a", "park-a", "gw-a", "gw-b"),
            ("eng-b", "park-b", "gw-b", "gw-a"),
        ):
            auth = {"Authorization": f"Bearer {by_name[who].token}"}
            gateways = c.get("/api/v1/gateways", headers=auth).json()
            assert {g["site"] for g in gateways} == {site}
            ids = {g["id"] for g in gateways}
            assert gateway in ids and other not in ids
        admin = {"Authorization": f"Bearer {by_name['admin'].token}"}
        assert {r["site"] for r in c.get("/api/v1/runs", headers=admin).json()} == {
            "park-a",
            "park-b",
        }


#: the leases each lease-operation caller sees: its sites, and its buildings when limited
SCOPE = {
    "admin": {"L-A1", "L-A2", "L-B1", "L-P1"},
    "fin-a": {"L-A1", "L-A2", "L-B1"},
    "sup-a": {"L-A1", "L-A2", "L-B1"},
    "legal-a": {"L-A1", "L-A2", "L-B1"},
    "mgr-a": {"L-A1", "L-A2"},
    "mgr-ab": {"L-B1"},
    "mgr-p": {"L-P1"},
    "fin-b": {"L-P1"},
}


def test_building_scope_filters_lists_and_hides_other_buildings_leases(
    rig: WebRig, callers: list[Caller], base_url: str
) -> None:
    by_name = {c.name: c for c in callers}
    with httpx.Client(base_url=base_url, follow_redirects=False) as c:
        for who, wanted in SCOPE.items():
            auth = {"Authorization": f"Bearer {by_name[who].token}"}
            seen = c.get("/api/v1/leases", headers=auth).json()["leases"]
            assert {row["id"] for row in seen} == wanted, who
            for lease in SEEDED:
                reply = c.get(f"/api/v1/leases/{lease.id}", headers=auth)
                assert reply.status_code == (200 if lease.id in wanted else 404), (who, lease.id)
            # a filter for another building or site gives nothing more
            assert {
                row["id"]
                for row in c.get("/api/v1/leases?building=B", headers=auth).json()["leases"]
            } == wanted & {"L-B1"}
            page = c.get("/leases", headers={"Cookie": f"mf_session={by_name[who].cookie}"})
            assert page.status_code == 200
            for lease in SEEDED:
                assert (f'data-lease="{lease.id}"' in page.text) == (lease.id in wanted)
                assert (lease.tenant_name in page.text) == (lease.id in wanted)
        # the risk list keeps to the same scope (no score stored: empty for everybody)
        mgr = {"Authorization": f"Bearer {by_name['mgr-a'].token}"}
        assert c.get("/api/v1/risk/leases", headers=mgr).json() == []
        me = c.get("/api/v1/me", headers=mgr).json()
        assert (me["role"], me["sites"], me["buildings"]) == ("manager", ["park-a"], ["park-a/A"])


def _owed(rig: WebRig, lease_id: str) -> tuple[int, int]:
    """(arrears, credit) [cents] of a lease, computed here in SQL: open invoices past due
    (today in Shanghai) and the credit ledger's balance."""
    with rig.sessions() as s:
        today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
        arrears = s.execute(
            text(
                "SELECT COALESCE(SUM(total_cents - paid_cents), 0) FROM invoices "
                "WHERE lease_id = :l AND status = 'open' AND due_on < :d"
            ),
            {"l": lease_id, "d": today},
        ).scalar_one()
        credit = s.execute(
            text("SELECT COALESCE(SUM(cents), 0) FROM credit_entries WHERE lease_id = :l"),
            {"l": lease_id},
        ).scalar_one()
    return int(arrears), int(credit)


def test_each_role_sees_a_leases_sensitive_fields_as_the_policy_says(
    rig: WebRig, callers: list[Caller], base_url: str
) -> None:
    by_name = {c.name: c for c in callers}
    owed = {lease.id: _owed(rig, lease.id) for lease in SEEDED}
    # the seeded month: L-A1 owes 8,000.00, L-A2 is paid, L-B1 has 200.00 credit
    assert owed["L-A1"] == (800_000, 0) and owed["L-A2"] == (0, 0)
    assert owed["L-B1"] == (0, 20_000) and owed["L-P1"] == (1_000_000, 0)
    full = {lease.id: lease.id_number for lease in SEEDED}
    # who sees arrears and credit, who sees the ID number in full
    policy = {
        "admin": (True, True),
        "fin-a": (True, False),
        "sup-a": (True, False),
        "legal-a": (False, True),
        "mgr-a": (False, False),
        "mgr-ab": (False, False),
    }
    with httpx.Client(base_url=base_url) as c:
        for who, (money, id_in_full) in policy.items():
            auth = {"Authorization": f"Bearer {by_name[who].token}"}
            body = c.get("/api/v1/leases", headers=auth).json()
            withheld = set(body["withheld"])
            assert ("arrears" in withheld, "credit_notes" in withheld) == (not money,) * 2, who
            assert ("id_number" in withheld) == (not id_in_full), who
            for row in body["leases"]:
                arrears, credit = owed[row["id"]]
                assert (row["arrears_cents"], row["credit_cents"]) == (
                    (arrears, credit) if money else (None, None)
                ), (who, row["id"])
                number = full[row["id"]]
                masked = number[:3] + "*" * 11 + number[-4:]
                assert row["id_number"] == (number if id_in_full else masked), (who, row["id"])
            # the same lease on its page: the same fields, masked or withheld alike
            lease = "L-B1" if who == "mgr-ab" else "L-A1"
            page = c.get(
                f"/leases/{lease}?lang=en", headers={"Cookie": f"mf_session={by_name[who].cookie}"}
            ).text
            number = full[lease]
            assert (number in page) == id_in_full, who
            assert (number[:3] + "*" * 11 + number[-4:] in page) == (not id_in_full), who
            assert ('class="arrears"' in page) == money, who
            assert ("Not shown or masked for your role: arrears" in page) == (not money), who
            if money and lease == "L-A1":
                assert "¥8000.00" in page
        one = c.get(
            "/api/v1/leases/L-A1", headers={"Authorization": f"Bearer {by_name['mgr-a'].token}"}
        ).json()["lease"]
        assert one["id_number"] == "110***********1234" and one["arrears_cents"] is None
        fin = c.get(
            "/api/v1/leases/L-A1", headers={"Authorization": f"Bearer {by_name['fin-a'].token}"}
        ).json()["lease"]
        assert fin["arrears_cents"] == 800_000 and fin["id_number"] == "110***********1234"
        legal = c.get(
            "/api/v1/leases/L-A1", headers={"Authorization": f"Bearer {by_name['legal-a'].token}"}
        ).json()["lease"]
        assert legal["id_number"] == "110105199001011234" and legal["arrears_cents"] is None


def test_a_browser_session_needs_its_csrf_token_to_change_anything(
    rig: WebRig, callers: list[Caller], base_url: str
) -> None:
    fin = next(c for c in callers if c.name == "fin-a")
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        for csrf in ("", "not-the-token"):
            reply = client.post(
                f"/finance/runs/{rig.seeded.draft}/review",
                data={"csrf": csrf},
                headers={"Cookie": f"mf_session={fin.cookie}"},
            )
            assert reply.status_code == 403
        reply = client.post(
            f"/api/v1/runs/{rig.seeded.draft}/review",
            headers={"Cookie": f"mf_session={fin.cookie}"},
        )
        assert reply.status_code == 403, "a cookie alone does not authorize an API change"
        # a bearer token is not sent by browsers on their own: no CSRF token needed
        assert (
            client.get(
                f"/api/v1/runs/{rig.seeded.draft}", headers={"Authorization": f"Bearer {fin.token}"}
            ).status_code
            == 200
        )


def tenant_paths(unit: str, token: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", f"/t/{unit}/{token}", {}),
        ("GET", f"/api/v1/tenant/{unit}/{token}", {}),
        ("POST", f"/t/{unit}/{token}/confirm", {"data": {"name": "x"}}),
        ("POST", f"/t/{unit}/{token}/dispute", {"data": {"comment": "x"}}),
        ("POST", f"/api/v1/tenant/{unit}/{token}/confirm", {"json": {"name": "x"}}),
        ("POST", f"/api/v1/tenant/{unit}/{token}/dispute", {"json": {"comment": "x"}}),
    ]


def test_no_tenant_link_reads_another_units_data(rig: WebRig, base_url: str) -> None:
    run = rig.seeded.posted[min(rig.seeded.posted)]
    acme = rig.web.links.link_for(StatementKey(run, "A101", "ACME"))
    body, tag = acme.token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=="))
    raw[0] ^= 1  # another nonce: a guessed link
    guessed = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "." + tag
    forged = f"{body}.{tag[:5]}{'B' if tag[5] == 'A' else 'A'}{tag[6:]}"
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        for unit, token, reason in (
            ("A102", acme.token, "wrong_unit"),
            ("A103", acme.token, "wrong_unit"),
            ("A101", guessed, "unknown"),
            ("A101", forged, "forged"),
            ("A101", "garbage", "malformed"),
        ):
            for method, path, kwargs in tenant_paths(unit, token):
                reply = client.request(method, path, **kwargs)
                assert reply.status_code == 403, (path, reply.status_code)
                assert reason in reply.text
                assert "BETA" not in reply.text and "ACME" not in reply.text
        # the same unit name at another site is another statement: a park-b link opens
        # park-b's, never park-a's
        other = rig.web.links.link_for(StatementKey(rig.seeded.other_site_posted, "A101", "ACME"))
        seen = client.get(f"/api/v1/tenant/A101/{other.token}").json()["statement"]
        assert (seen["site"], seen["run"]["id"]) == ("park-b", rig.seeded.other_site_posted)
