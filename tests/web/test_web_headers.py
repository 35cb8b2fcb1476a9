"""Security headers on every response, and the request body bounds: a walk over every route
of the app (``app.routes``) as an admin signed in through the real sign-in form and API, and
as nobody, checks the headers of each answer (pages, API, redirects, refusals, static files);
every route refuses a body over its bound with 413, sent with or without a length."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

import httpx
import pytest
from pytest_mock import MockerFixture

from cloud.web.app import create_app
from cloud.web.deps import ApiServices
from cloud.web.guard import DEFAULT_BODY_LIMIT, MAX_JSON_DEPTH, body_limit
from cloud.web.headers import CSP
from tests.support.authz_samples import Samples
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.web.test_web_authorization import all_routes

TENANT_ROUTES = {
    "tenant_page",
    "tenant_confirm_form",
    "tenant_dispute_form",
    "api_tenant_statement",
    "api_tenant_confirm",
    "api_tenant_dispute",
}
#: routes answering with a page a signed-in admin is meant to see (status 200)
PAGES = {
    "home",
    "runs_page",
    "run_page",
    "statement_print_page",
    "run_print_page",
    "disputes_page",
    "close_page",
    "risk_page",
    "gateways_page",
    "gateway_page",
    "claim_token_page",
    "accounts_page",
    "login_page",
    "tenant_page",
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("headers"), months=2)
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


@pytest.fixture(scope="module")
def samples(rig: WebRig) -> Samples:
    """Path parameters of every route (made once: they open a dispute, for one)."""
    return Samples(rig)


@dataclasses.dataclass
class Admin:
    cookie: str
    csrf: str
    token: str


def real_sign_in(client: httpx.Client, username: str) -> Admin:
    """Sign in through the sign-in form (a browser session and its CSRF token from a page)
    and through the API (a bearer token)."""
    form = client.get("/login")
    login_csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert form.status_code == 200 and login_csrf
    signed = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf": login_csrf.group(1)},
    )
    assert signed.status_code == 303, signed.text
    cookie = signed.cookies["mf_session"]
    home = client.get("/", headers={"Cookie": f"mf_session={cookie}"})
    csrf = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert home.status_code == 200 and csrf
    api = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert api.status_code == 200, api.text
    client.cookies.clear()
    return Admin(cookie, csrf.group(1), api.json()["token"])


def request_as(
    client: httpx.Client, who: Admin | None, samples: Samples, name: str, method: str, path: str
) -> httpx.Response:
    kwargs = samples.body(name)
    headers: dict[str, str] = {}
    if who and path.startswith("/api/"):
        headers["Authorization"] = f"Bearer {who.token}"
    elif who:
        headers["Cookie"] = f"mf_session={who.cookie}"
        if method != "GET":
            kwargs.setdefault("data", {})["csrf"] = who.csrf
    if name == "login_form":
        headers["Cookie"] = "mf_login_csrf=double-submit"
        kwargs["data"]["csrf"] = "double-submit"
    client.cookies.clear()
    return client.request(method, path, headers=headers, **kwargs)


def header_problems(reply: httpx.Response, path: str) -> list[str]:
    """What is missing or wrong in ``reply``'s security headers."""
    h = reply.headers
    want = {
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": "no-referrer"
        if path.startswith(("/t/", "/api/v1/tenant/"))
        else "same-origin",
    }
    if not path.startswith("/static/"):
        want["cache-control"] = "no-store"
    problems = [f"{k}: {h.get(k)!r} != {v!r}" for k, v in want.items() if h.get(k) != v]
    if "strict-transport-security" in h:
        problems.append("HSTS over plain HTTP without a TLS public URL")
    return problems


def test_csp_allows_no_inline_script_or_style_and_no_framing() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'" and directives["default-src"] == "'none'"
    assert "unsafe" not in CSP


def test_every_route_answers_with_the_security_headers(
    rig: WebRig, base_url: str, samples: Samples
) -> None:
    seen: dict[str, int] = {}
    problems: list[str] = []
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as client:
        admin = real_sign_in(client, "admin")
        for name, template, methods in sorted(all_routes(rig.app)):
            for method in sorted(methods - {"HEAD"}):
                path = samples.path(template)
                for who in (admin, None):
                    if who and name in ("api_sign_out", "logout_form"):
                        who = real_sign_in(client, "admin")  # these end the session they use
                    reply = request_as(client, who, samples, name, method, path)
                    assert reply.status_code < 500, (name, reply.text[:300])
                    if who is not None:
                        seen[name] = reply.status_code
                    problems += [
                        f"{method} {path} ({reply.status_code}): {p}"
                        for p in header_problems(reply, path)
                    ]
    assert not problems, "\n".join(problems)
    assert seen.keys() == {name for name, _, _ in all_routes(rig.app)}
    not_shown = {name: seen[name] for name in PAGES if seen[name] != 200}
    assert not not_shown, f"pages the admin did not get (the walk must see them): {not_shown}"
    assert {seen[n] for n in TENANT_ROUTES} <= {200, 303, 409}


def test_refusals_and_missing_pages_carry_the_headers_too(rig: WebRig, base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for reply, path in (
            (client.get("/no/such/page"), "/no/such/page"),
            (client.get("/static/nothing.css"), "/static/nothing.css"),
            (client.get("/finance/runs?site=a%00"), "/finance/runs"),
            (
                client.post("/api/v1/session", content=b"x" * (DEFAULT_BODY_LIMIT + 1)),
                "/api/v1/session",
            ),
        ):
            assert reply.status_code in (400, 404, 413)
            assert header_problems(reply, path) == [], (path, reply.status_code)


def test_a_server_error_carries_the_headers_too(
    rig: WebRig, base_url: str, mocker: MockerFixture
) -> None:
    """A fault we cannot make for real (the lease service failing mid-request): the 500
    answer has the same headers as every other, and says nothing of the error."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = real_sign_in(client, "admin").token
        mocker.patch.object(
            rig.web.leases, "leases", side_effect=RuntimeError("the registry's disk is gone")
        )
        reply = client.get("/api/v1/leases", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 500
    assert reply.json() == {"detail": "internal server error"}
    assert header_problems(reply, "/api/v1/leases") == []


def test_hsts_behind_tls_only(rig: WebRig, base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        assert "strict-transport-security" not in client.get("/healthz").headers
        # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (its --forwarded-allow-ips)
        proxied = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert proxied.headers["strict-transport-security"] == "max-age=31536000"
    # a deployment whose public URL is https:// sends it on every answer
    web = dataclasses.replace(rig.web, public_url="https://meter.example.com")
    provisioning = rig.app.state.services.provisioning
    with serve(create_app(ApiServices(provisioning=provisioning, web=web))) as url:
        reply = httpx.get(f"{url}{rig.link(rig.seeded.latest)}", timeout=30)
        assert reply.status_code == 200
        assert reply.headers["strict-transport-security"] == "max-age=31536000"
        assert reply.headers["referrer-policy"] == "no-referrer"


def _chunks(size: int) -> Iterator[bytes]:
    sent = 0
    while sent < size:
        part = min(8192, size - sent)
        sent += part
        yield b"x" * part


def test_every_route_refuses_a_body_over_its_bound(
    rig: WebRig, base_url: str, samples: Samples
) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        admin = real_sign_in(client, "admin")
        for _name, template, methods in sorted(all_routes(rig.app)):
            path = samples.path(template)
            limit = body_limit(path)
            for method in sorted(methods - {"HEAD"}):
                auth = {"Authorization": f"Bearer {admin.token}"}
                if not path.startswith("/api/"):
                    auth = {"Cookie": f"mf_session={admin.cookie}", "X-CSRF-Token": admin.csrf}
                for body in (b"x" * (limit + 1), _chunks(limit + 1)):
                    client.cookies.clear()
                    reply = client.request(method, path, content=body, headers=auth)
                    assert reply.status_code == 413, (method, path, reply.status_code)
                    text = reply.json()["detail"] if path.startswith("/api/") else reply.text
                    assert "too large" in text and "at most" in text, text
    assert body_limit("/api/v1/claim-tokens") > 2 * 256 * 1024 > DEFAULT_BODY_LIMIT


def test_a_site_configuration_within_its_bound_is_accepted(rig: WebRig, base_url: str) -> None:
    config = 'site = "park-a"\ngateway = "gw-big"\n' + "# padding of a long file\n" * 8000
    assert DEFAULT_BODY_LIMIT < len(config) < body_limit("/api/v1/claim-tokens")
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = real_sign_in(client, "admin").token
        reply = client.post(
            "/api/v1/claim-tokens",
            json={"site": "park-a", "gateway": "gw-big", "site_config": config},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.status_code == 201, reply.text[:300]


def test_every_route_refuses_json_nested_too_deeply(
    rig: WebRig, base_url: str, samples: Samples
) -> None:
    # 60,000 levels make Python's own JSON parser give up (a RecursionError, once a 500);
    # 33 levels are past the bound and would reach the handlers' models
    with httpx.Client(base_url=base_url, timeout=30) as client:
        admin = real_sign_in(client, "admin")
        for _name, template, methods in sorted(all_routes(rig.app)):
            path = samples.path(template)
            auth = {"Authorization": f"Bearer {admin.token}"}
            if not path.startswith("/api/"):
                auth = {"Cookie": f"mf_session={admin.cookie}", "X-CSRF-Token": admin.csrf}
            for method in sorted(methods - {"HEAD", "GET", "DELETE", "OPTIONS"}):
                for body in (b"[" * 60_000, b'{"a": ' * 33 + b"1" + b"}" * 33):
                    client.cookies.clear()
                    reply = client.request(
                        method,
                        path,
                        content=body,
                        headers=auth | {"Content-Type": "application/json"},
                    )
                    assert reply.status_code == 400, (method, path, reply.status_code)
                    text = reply.json()["detail"] if path.startswith("/api/") else reply.text
                    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in text, text
