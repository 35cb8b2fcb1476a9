"""Staff access over real HTTP (uvicorn, SQLite registry): failed sign-ins are delayed, then
lock the account until an admin unlocks it; one address guessing many names is blocked; a
disabled account and a password reset end real session cookies and API tokens; the password
rule refuses common passwords (decision 0017).

The registry's clock is a hand-moved one, so the growing delays are walked through without
waiting for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.provisioning import CloudSigner, ProvisioningService
from cloud.registry.db import open_registry
from cloud.staff.accounts import AccountService, Role, SignInFailed
from cloud.staff.models import AuditEntry
from cloud.web.app import create_app
from cloud.web.deps import ApiServices, WebServices
from tests.support.browser import serve

PASSWORD = "correct horse battery"


class HandClock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Staff:
    sessions: sessionmaker[Session]
    accounts: AccountService
    clock: HandClock
    url: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)


@pytest.fixture
def staff(tmp_path: Path) -> Iterator[Staff]:
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    clock = HandClock()
    provisioning = ProvisioningService(
        sessions, CloudSigner(Ed25519PrivateKey.generate()), clock=clock
    )
    web = WebServices.build(provisioning)
    accounts = web.accounts
    for name, role, sites in (
        ("admin", Role.ADMIN, []),
        ("root", Role.ADMIN, []),
        ("alice", Role.FINANCE, ["park-a"]),
        ("bob", Role.ENGINEER, ["park-a"]),
    ):
        accounts.create_account(name, PASSWORD, role, sites)
    app = create_app(ApiServices(provisioning=provisioning, web=web))
    with serve(app) as url:
        yield Staff(sessions, accounts, clock, url)
    sessions.kw["bind"].dispose()


def api_sign_in(c: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    return c.post("/api/v1/session", json={"username": username, "password": password})


def token(c: httpx.Client, username: str, password: str = PASSWORD) -> str:
    reply = api_sign_in(c, username, password)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["token"])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def page_sign_in(
    c: httpx.Client, username: str, password: str = PASSWORD, lang: str = "en"
) -> httpx.Response:
    """Sign in on the sign-in page as a browser does (its double-submit CSRF cookie)."""
    c.cookies.clear()
    form = c.get(f"/login?lang={lang}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return c.post(
        f"/login?lang={lang}",
        data={"username": username, "password": password, "csrf": csrf.group(1)},
    )


def as_browser(cookie: str) -> dict[str, str]:
    """The headers of a browser holding the session cookie (the client keeps no cookie)."""
    return {"Cookie": f"mf_session={cookie}"}


def browser_session(c: httpx.Client, username: str) -> tuple[str, str]:
    """(session cookie, CSRF token of its forms) of a fresh browser sign-in."""
    reply = page_sign_in(c, username)
    assert reply.status_code == 303, reply.text
    cookie = reply.cookies["mf_session"]
    c.cookies.clear()
    home = c.get("/?lang=en", headers=as_browser(cookie))
    csrf = re.search(r'name="csrf" value="([^"]+)"', home.text)
    assert home.status_code == 200 and csrf is not None
    return cookie, csrf.group(1)


def cookie_works(c: httpx.Client, cookie: str) -> bool:
    c.cookies.clear()
    reply = c.get("/", headers=as_browser(cookie))
    assert reply.status_code in (200, 303), reply.status_code
    return reply.status_code == 200


def token_works(c: httpx.Client, value: str) -> bool:
    reply = c.get("/api/v1/me", headers=bearer(value))
    assert reply.status_code in (200, 401), reply.status_code
    return reply.status_code == 200


def test_wrong_passwords_wait_longer_and_longer_then_lock_the_account(staff: Staff) -> None:
    with staff.client() as c:
        admin = token(c, "admin")
        waits = []
        failures = 0
        while True:
            reply = api_sign_in(c, "alice", "not the password")
            if reply.status_code == 429:
                wait = int(reply.headers["Retry-After"])
                assert "try again" in reply.json()["detail"]
                waits.append(wait)
                # the right password is refused too while the delay runs: nothing is checked
                assert api_sign_in(c, "alice").status_code == 429
                staff.clock.advance(wait)
                continue
            if reply.status_code == 403:
                break
            assert reply.status_code == 401, reply.text
            assert reply.json()["detail"] == "wrong user name or password"
            failures += 1
            assert failures <= 10
        assert failures == 10 and waits == [1, 2, 4, 8, 16, 32, 60]
        assert "locked" in reply.json()["detail"]
        staff.clock.advance(3 * 3600)  # a lock does not end with time
        assert api_sign_in(c, "alice").status_code == 403
        zh = page_sign_in(c, "alice", lang="zh-CN")
        assert zh.status_code == 403 and "此账号已锁定" in zh.text
        assert "locked after too many failed sign-ins" in page_sign_in(c, "alice").text
        c.cookies.clear()
        locks = c.get("/api/v1/sign-in-locks", headers=bearer(admin)).json()
        assert [(lk["kind"], lk["subject"], lk["until"]) for lk in locks] == [
            ("account", "alice", None)
        ]
        listed = c.get("/api/v1/accounts", headers=bearer(admin)).json()
        assert {a["username"]: a["locked"] for a in listed}["alice"] is True
        unlocked = c.post("/api/v1/accounts/alice/unlock", headers=bearer(admin))
        assert unlocked.status_code == 200 and unlocked.json()["locked"] is False
        assert api_sign_in(c, "alice").status_code == 200
        # the run of failures is forgotten: three free failures again
        for _ in range(3):
            assert api_sign_in(c, "alice", "not the password").status_code == 401


def test_a_success_ends_the_accounts_run_and_a_quiet_window_any_run(staff: Staff) -> None:
    accounts, key = staff.accounts, "account:bob"
    for _ in range(3):
        with pytest.raises(SignInFailed):
            accounts.sign_in("bob", "not the password")
    assert accounts.throttle.failures(key) == 3
    staff.clock.advance(1)
    accounts.sign_in("bob", PASSWORD)
    assert accounts.throttle.failures(key) == 0
    with staff.client() as c:
        for _ in range(3):
            assert api_sign_in(c, "bob", "not the password").status_code == 401
        again = api_sign_in(c, "bob", "not the password")
        assert again.status_code == 429 and again.headers["Retry-After"] == "1"
        # a success does not end the address's run: a valid account resets nothing there
        staff.clock.advance(1)
        assert api_sign_in(c, "bob").status_code == 200
        assert accounts.throttle.failures("source:127.0.0.1") == 3
        staff.clock.advance(15 * 60)  # the window passes without a failure
        for _ in range(3):
            assert api_sign_in(c, "bob", "not the password").status_code == 401
        assert accounts.throttle.failures("source:127.0.0.1") == 3


def test_one_address_guessing_many_names_is_blocked_for_a_while(staff: Staff) -> None:
    with staff.client() as c:
        admin = token(c, "admin")
        failures = 0
        while failures < 30:
            reply = api_sign_in(c, f"guess-{failures}", "not the password")
            if reply.status_code == 429:
                staff.clock.advance(int(reply.headers["Retry-After"]))
                continue
            assert reply.status_code == 401, reply.text
            failures += 1
        blocked = api_sign_in(c, "bob")  # a right password from the blocked address
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) == 15 * 60
        assert "address" in blocked.json()["detail"]
        locks = c.get("/api/v1/sign-in-locks", headers=bearer(admin)).json()
        assert [(lk["kind"], lk["subject"]) for lk in locks] == [("source", "127.0.0.1")]
        staff.clock.advance(15 * 60)  # the block ends on its own
        assert api_sign_in(c, "bob").status_code == 200
        # and again, until an admin lifts it on the admin page
        failures = 0
        while failures < 30:
            reply = api_sign_in(c, f"again-{failures}", "not the password")
            if reply.status_code == 429:
                staff.clock.advance(int(reply.headers["Retry-After"]))
                continue
            failures += 1
        assert api_sign_in(c, "bob").status_code == 429
        page = c.get("/admin/accounts?lang=en", headers=bearer(admin))
        assert page.status_code == 200 and "127.0.0.1" in page.text
        assert "Locked sign-ins" in page.text
        lifted = c.delete("/api/v1/sign-in-locks/source/127.0.0.1", headers=bearer(admin))
        assert lifted.status_code == 204
        assert api_sign_in(c, "bob").status_code == 200
        assert c.get("/api/v1/sign-in-locks", headers=bearer(admin)).json() == []


def test_the_admin_page_unlocks_an_account_with_its_csrf_token(staff: Staff) -> None:
    with staff.client() as c:
        cookie, csrf = browser_session(c, "admin")
        for _ in range(10):
            reply = api_sign_in(c, "bob", "not the password")
            staff.clock.advance(int(reply.headers.get("Retry-After", "0")) + 60)
        assert api_sign_in(c, "bob").status_code == 403
        page = c.get("/admin/accounts?lang=en", headers=as_browser(cookie))
        assert 'action="/admin/accounts/bob/unlock?lang=en"' in page.text
        no_csrf = c.post("/admin/accounts/bob/unlock", headers=as_browser(cookie))
        assert no_csrf.status_code == 403
        done = c.post(
            "/admin/accounts/bob/unlock?lang=en",
            data={"csrf": csrf},
            headers=as_browser(cookie),
        )
        assert done.status_code == 303 and "did=unlocked" in done.headers["location"]
        assert (
            "Sign-in unlocked" in c.get(done.headers["location"], headers=as_browser(cookie)).text
        )
        assert api_sign_in(c, "bob").status_code == 200


def test_disabling_an_account_ends_its_cookie_and_token_at_once(staff: Staff) -> None:
    with staff.client() as c:
        admin_cookie, admin_csrf = browser_session(c, "admin")
        cookie, _ = browser_session(c, "alice")
        alice = token(c, "alice")
        assert cookie_works(c, cookie) and token_works(c, alice)
        done = c.post(
            "/admin/accounts/alice/disable?lang=en",
            data={"csrf": admin_csrf},
            headers=as_browser(admin_cookie),
        )
        assert done.status_code == 303 and "did=disabled" in done.headers["location"]
        assert not cookie_works(c, cookie) and not token_works(c, alice)
        refused = api_sign_in(c, "alice")
        assert refused.status_code == 401  # the same answer as a wrong password
        assert refused.json()["detail"] == "wrong user name or password"
        root = token(c, "root")
        listed = {a["username"]: a for a in c.get("/api/v1/accounts", headers=bearer(root)).json()}
        assert listed["alice"]["active"] is False
        # an admin cannot disable their own account; an unknown one is not found
        own = c.post("/api/v1/accounts/root/disable", headers=bearer(root))
        assert own.status_code == 400 and "itself" in own.json()["detail"]
        assert c.post("/api/v1/accounts/nobody/disable", headers=bearer(root)).status_code == 404
        enabled = c.post("/api/v1/accounts/alice/enable", headers=bearer(root))
        assert enabled.status_code == 200 and enabled.json()["active"] is True
        # enabling does not bring the ended sessions back
        assert not cookie_works(c, cookie) and not token_works(c, alice)
        assert token_works(c, token(c, "alice"))
    with staff.sessions() as s:
        actions = s.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.detail)
            .where(AuditEntry.subject == "account:alice")
            .order_by(AuditEntry.id)
        ).all()
    assert [(a, b) for a, b, _ in actions] == [
        ("cli", "account_created"),
        ("admin", "account_disabled"),
        ("root", "account_enabled"),
    ]
    assert actions[1][2] == "2 sessions and tokens ended"


def test_a_password_reset_ends_every_other_session_and_token(staff: Staff) -> None:
    with staff.client() as c:
        cookie, _ = browser_session(c, "alice")
        alice = token(c, "alice")
        admin = token(c, "admin")
        admin_cookie, admin_csrf = browser_session(c, "admin")
        reset = c.post(
            "/api/v1/accounts",
            headers=bearer(admin),
            json={
                "username": "alice",
                "password": "a new and longer secret",
                "role": "finance",
                "sites": ["park-a"],
            },
        )
        assert reset.status_code == 201, reset.text
        assert not cookie_works(c, cookie) and not token_works(c, alice)
        assert api_sign_in(c, "alice").status_code == 401
        assert token_works(c, token(c, "alice", "a new and longer secret"))
        # an admin resetting their own password keeps the session they do it with
        mine = c.post(
            "/admin/accounts?lang=en",
            data={
                "csrf": admin_csrf,
                "username": "admin",
                "password": "the admin's new passphrase",
                "role": "admin",
                "sites": "",
            },
            headers=as_browser(admin_cookie),
        )
        assert mine.status_code == 303 and "done=admin" in mine.headers["location"]
        assert cookie_works(c, admin_cookie) and not token_works(c, admin)


def test_the_password_rule_refuses_common_and_weak_passwords(staff: Staff) -> None:
    with staff.client() as c:
        admin = token(c, "admin")
        cookie, csrf = browser_session(c, "admin")
        for password, why in (
            ("password1234", "common passwords"),
            ("Qwertyuiop", "common passwords"),
            ("1q2w3e4r5t", "common passwords"),
            ("aaaaaaaaaaaaaaa", "4 different characters"),
            ("carol-carol", None),  # fine: contains the name, is not the name
            ("Carol.Smith", None),
        ):
            reply = c.post(
                "/api/v1/accounts",
                headers=bearer(admin),
                json={"username": "carol", "password": password, "role": "admin"},
            )
            if why is None:
                assert reply.status_code == 201, reply.text
            else:
                assert reply.status_code == 400 and why in reply.json()["detail"], reply.text
        same = c.post(
            "/api/v1/accounts",
            headers=bearer(admin),
            json={"username": "frank-smith", "password": "Frank-Smith", "role": "admin"},
        )
        assert same.status_code == 400 and "user name" in same.json()["detail"]
        page = c.post(
            "/admin/accounts?lang=en",
            data={"csrf": csrf, "username": "dora", "password": "iloveyou12", "role": "admin"},
            headers=as_browser(cookie),
        )
        assert page.status_code == 303
        shown = c.get(page.headers["location"], headers=as_browser(cookie))
        assert "list of common passwords" in shown.text
        listed = c.get("/api/v1/accounts", headers=bearer(admin)).json()
        assert "dora" not in {a["username"] for a in listed}


def test_changing_ones_own_password_ends_every_other_session_and_token(staff: Staff) -> None:
    with staff.client() as c:
        cookie, csrf = browser_session(c, "alice")
        other_cookie, _ = browser_session(c, "alice")
        alice = token(c, "alice")
        page = c.get("/account/password?lang=en", headers=as_browser(cookie))
        assert page.status_code == 200 and "Change my password" in page.text
        for current, new, status, says in (
            ("not the password", "a fresh long secret", 400, "current password is wrong"),
            (PASSWORD, "password1234", 400, "list of common passwords"),
            (PASSWORD, PASSWORD, 400, "is the current one"),
        ):
            refused = c.post(
                "/account/password?lang=en",
                data={"csrf": csrf, "current_password": current, "new_password": new},
                headers=as_browser(cookie),
            )
            assert refused.status_code == status and says in refused.text, refused.text
        assert cookie_works(c, other_cookie) and token_works(c, alice)
        done = c.post(
            "/account/password?lang=en",
            data={
                "csrf": csrf,
                "current_password": PASSWORD,
                "new_password": "a fresh long secret",
            },
            headers=as_browser(cookie),
        )
        assert done.status_code == 200 and "2 other sessions and API tokens" in done.text
        assert cookie_works(c, cookie)
        assert not cookie_works(c, other_cookie) and not token_works(c, alice)
        # the same through the API, with a token: the token it is made with keeps working
        fresh = token(c, "alice", "a fresh long secret")
        changed = c.post(
            "/api/v1/me/password",
            headers=bearer(fresh),
            json={"current_password": "a fresh long secret", "new_password": "yet another secret"},
        )
        assert changed.status_code == 200 and changed.json() == {"ended": 1}
        assert token_works(c, fresh) and not cookie_works(c, cookie)
        assert api_sign_in(c, "alice", "a fresh long secret").status_code == 401
        assert api_sign_in(c, "alice", "yet another secret").status_code == 200
        # wrong current passwords count against the account like failed sign-ins
        for _ in range(3):
            wrong = c.post(
                "/api/v1/me/password",
                headers=bearer(fresh),
                json={"current_password": "nope nope", "new_password": "whatever else 1"},
            )
            assert wrong.status_code == 400
        later = c.post(
            "/api/v1/me/password",
            headers=bearer(fresh),
            json={"current_password": "yet another secret", "new_password": "whatever else 1"},
        )
        assert later.status_code == 429 and later.headers["Retry-After"] == "1"
