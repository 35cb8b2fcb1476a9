"""Helpers of the web tests: a seeded registry with posted runs, the app served by uvicorn on
127.0.0.1, staff accounts, and headless Debian Chromium driven by Playwright.

Chromium comes from Debian (``apt-get install chromium``; ``deploy/local/install-servers.sh
--with-chromium``), never from Playwright's own download (no internet here). Without it the
browser tests are skipped with the reason, or fail when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import case_from_data
from cloud.apportion.runs import approve_run, create_run, post_run, review_run
from cloud.gateways.provisioning import BrokerGrant, CloudSigner, ProvisioningService
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.staff.accounts import AccountService, Role
from cloud.statements.links import StatementKey, WebSecret
from cloud.web.app import create_app
from cloud.web.deps import ApiServices, WebServices
from tests.support.servers import missing_server

CASES = Path(__file__).parents[1] / "cases"
#: where screenshots go (``test-artifacts/`` is ignored by git; CI can keep it)
ARTEFACTS = Path(
    os.environ.get("MF_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts" / "web")
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}

#: history months of park-a (the last is April 2026, the case file's own month)
MONTHS = [date(2025 + (4 + i) // 12, (4 + i) % 12 + 1, 1) for i in range(12)]


def find_chromium() -> str | None:
    """Debian's Chromium (``CHROMIUM_BIN`` overrides)."""
    for candidate in (
        os.environ.get("CHROMIUM_BIN"),
        shutil.which("chromium"),
        "/usr/bin/chromium",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_chromium() -> str:
    """Chromium's path; skip the test (fail when CI=true) if it or Playwright is missing."""
    found = find_chromium()
    if not found:
        missing_server("chromium", "chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing_server("playwright (the Python package, `pip install playwright`)", "chromium")
    return found


def month_case(month: date, factor: float, site: str = "park-a") -> dict[str, Any]:
    """basic.yaml moved to ``month`` with every use scaled by ``factor`` (bill included)."""
    raw = yaml.safe_load((CASES / "basic.yaml").read_text())
    data = copy.deepcopy(raw)
    end = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    data["site"] = site
    data["period"] = {"start": month.isoformat(), "end": end.isoformat()}
    data["occupancy"]["A101"] = [{"tenant": "ACME", "from": "2025-01-01"}]
    data["tariffs"][0]["from"] = "2025-01-01"
    data["readings"] = {}
    for meter, series in raw["readings"].items():
        first, last = (float(v) for v in series.values())
        data["readings"][meter] = {
            month.isoformat(): first,
            end.isoformat(): round(first + (last - first) * factor, 2),
        }
    data["bill"] = {
        "invoice": f"SGCC-{month:%Y-%m}-{site}",
        "amounts": {"total": round(720.0 * factor, 2)},
    }
    return data


@dataclass
class Seeded:
    """What the seeded registry holds."""

    posted: dict[date, str] = field(default_factory=dict)  # park-a month → posted run
    draft: str = ""  # park-a, May 2026, draft
    held: str = ""  # park-b, held (negative residual)
    other_site_posted: str = ""  # park-b, posted

    @property
    def latest(self) -> str:
        return self.posted[MONTHS[-1]]


def seed(sessions: sessionmaker[Session], key: Ed25519PrivateKey, months: int = 12) -> Seeded:
    """The last ``months`` of :data:`MONTHS` posted at park-a, a draft of May 2026, and
    park-b with a held run and a posted one (created by ``seed``, reviewed by
    ``seed-reviewer``, approved by ``seed-approver``: four eyes)."""
    out = Seeded()
    with sessions.begin() as s:
        for i, month in list(enumerate(MONTHS))[-months:]:
            run = create_run(s, case_from_data(month_case(month, 0.8 + 0.04 * i)), by="seed")
            review_run(s, run.id, by="seed-reviewer")
            approve_run(s, run.id, by="seed-approver")
            post_run(s, run.id, by="seed", key=key)
            out.posted[month] = run.id
        out.draft = create_run(s, case_from_data(month_case(date(2026, 5, 1), 1.1)), by="seed").id
        held = yaml.safe_load((CASES / "negative_residual.yaml").read_text())
        out.held = create_run(s, case_from_data({**held, "site": "park-b"}), by="seed").id
        other = create_run(
            s, case_from_data(month_case(date(2026, 4, 1), 1.0, "park-b")), by="seed"
        )
        review_run(s, other.id, by="seed-reviewer")
        approve_run(s, other.id, by="seed-approver")
        post_run(s, other.id, by="seed", key=key)
        out.other_site_posted = other.id
    return out


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yield its base URL."""
    # proto=IPPROTO_TCP, or asyncio does not set TCP_NODELAY on the accepted connections
    # (it checks the protocol number) and every reply on a kept-alive connection waits
    # 40 ms for a delayed ACK
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started:
                break
            thread.join(0.01)
        assert server.started, "uvicorn did not start within 10 s"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


#: (user name, role, sites) of the seeded staff accounts
ACCOUNTS = [
    ("admin", Role.ADMIN, []),
    ("fin-a", Role.FINANCE, ["park-a"]),
    ("fin-a2", Role.FINANCE, ["park-a"]),  # a second pair of eyes at park-a (four eyes)
    ("eng-a", Role.ENGINEER, ["park-a"]),
    ("fin-b", Role.FINANCE, ["park-b"]),
    ("eng-b", Role.ENGINEER, ["park-b"]),
]


@dataclass
class WebRig:
    """A registry with seeded runs and accounts, the services and the app on them."""

    sessions: sessionmaker[Session]
    signer: CloudSigner
    key: Ed25519PrivateKey
    secret: WebSecret
    web: WebServices
    app: FastAPI
    seeded: Seeded
    published: list[tuple[str, bytes]]
    gateway_keys: dict[str, Ed25519PrivateKey]

    def link(self, run_id: str, unit: str = "A101", party: str = "ACME") -> str:
        """The path of a tenant link to a posted statement."""
        return self.web.links.link_for(StatementKey(run_id, unit, party)).path()

    def token(self, client: httpx.Client, username: str) -> str:
        """An API bearer token of a seeded account."""
        reply = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
        assert reply.status_code == 200, reply.text
        return str(reply.json()["token"])


def make_rig(work: Path, url: str | None = None, months: int = 12) -> WebRig:
    """A rig on the registry at ``url`` (default: SQLite under ``work``) with ``months``
    posted months of park-a."""
    sessions = open_registry(url or f"sqlite:///{work / 'registry.sqlite'}")
    key = Ed25519PrivateKey.generate()
    signer = CloudSigner(key)
    secret = WebSecret.generate()
    published: list[tuple[str, bytes]] = []
    provisioning = ProvisioningService(sessions, signer)
    web = WebServices.build(
        provisioning,
        signing_key=key,
        secret=secret,
        publish=lambda topic, body: published.append((topic, body)),
        claim_broker=BrokerGrant("mqtt://127.0.0.1:1883"),
    )
    seeded = seed(sessions, key, months)
    gateway_keys = {"gw-a": Ed25519PrivateKey.generate(), "gw-b": Ed25519PrivateKey.generate()}
    with sessions.begin() as s:
        for gateway, gateway_key in gateway_keys.items():
            register_gateway(s, f"park-{gateway[-1]}", gateway, gateway_key.public_key())
    accounts = AccountService(sessions)
    for name, role, sites in ACCOUNTS:
        accounts.create_account(name, PASSWORD, role, sites)
    app = create_app(ApiServices(provisioning=provisioning, web=web))
    return WebRig(sessions, signer, key, secret, web, app, seeded, published, gateway_keys)


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artefact; return its path."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian Chromium under Playwright (each context a fresh profile)."""
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def phone(browser: Any) -> Any:
    """A phone-sized context (390 × 844 CSS px, touch), Chinese locale, Shanghai time."""
    return browser.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
    )


def desktop(browser: Any) -> Any:
    """A desktop-sized context for the staff pages."""
    return browser.new_context(
        viewport={"width": 1280, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai"
    )


def sign_in(
    page: Any, base_url: str, username: str, lang: str = "zh-CN", password: str = PASSWORD
) -> None:
    """Sign in on the sign-in page in ``lang`` as a person would: the labelled fields, the
    form's button; returns once the browser has left the sign-in page."""
    page.goto(f"{base_url}/login?lang={lang}")
    page.get_by_label(re.compile("用户名|User name|Username", re.I)).fill(username)
    page.get_by_label(re.compile("^(密码|Password)", re.I)).fill(password)
    page.locator("form[action^='/login'] button[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)
