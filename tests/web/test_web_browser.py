"""The pages in a real browser (Debian Chromium, headless, under Playwright): a tenant on a
phone opens the QR link, sees the run's numbers and confirms; wrong-unit and expired links
get a refusal page; finance reviews a run and may not approve it too (four eyes), a second
account approves it and posts it through the confirmation page; an engineer sees a gateway go
offline when its process dies. Screenshots go to ``test-artifacts/web/``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from cloud.apportion.models import ApportionLine, ApportionRun, StatementConfirmation
from cloud.gateways.feed import GatewayFeed
from cloud.registry.service import register_gateway
from cloud.statements.links import StatementKey, TenantLinkService
from edge.keys import GatewayIdentity
from simulators.dlt645_meter import Dlt645Line, SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SystemClock
from tests.support.browser import (
    PASSWORD,
    WebRig,
    desktop,
    make_rig,
    phone,
    screenshot,
    serve,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("browser"))
    yield rig
    rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def base_url(rig: WebRig) -> Iterator[str]:
    with serve(rig.app) as url:
        yield url


def sign_in(page: Any, base_url: str, username: str, target: str) -> None:
    page.goto(f"{base_url}{target}")
    assert "/login" in page.url  # not signed in yet: sent to the sign-in form
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{target}*")


def test_tenant_opens_the_qr_link_on_a_phone_and_confirms(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    run = rig.seeded.latest
    with httpx.Client(base_url=base_url) as client:
        token = rig.token(client, "fin-a")
        url = client.get(
            f"/api/v1/runs/{run}/statements/A101/ACME", headers={"Authorization": f"Bearer {token}"}
        ).json()["link"]["url"]
    with rig.sessions() as s:
        lines = [
            x
            for x in s.scalars(
                select(ApportionLine)
                .where(
                    ApportionLine.run_id == run,
                    ApportionLine.unit == "A101",
                    ApportionLine.party == "ACME",
                )
                .order_by(ApportionLine.line_no)
            )
            if x.cents or x.kwh
        ]
    context = phone(browser)
    page = context.new_page()
    page.goto(url)
    total = sum(x.cents for x in lines)
    assert page.get_by_test_id("total").inner_text() == f"{Decimal(total) / 100:.2f}"
    assert page.get_by_test_id("genuine").is_visible()
    shown = [
        int(c)
        for c in page.locator("[data-testid=own-lines] li[data-cents]").evaluate_all(
            "rows => rows.map(r => r.dataset.cents)"
        )
    ]
    shown += [
        int(c)
        for c in page.locator("[data-testid=shared-lines] li[data-cents]").evaluate_all(
            "rows => rows.map(r => r.dataset.cents)"
        )
    ]
    own = [x.cents for x in lines if x.component == "own_use"]
    assert shown == own + [x.cents for x in lines if x.component != "own_use"]
    assert page.get_by_test_id("meter-U1").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    screenshot(page, "tenant-statement-phone")
    page.get_by_test_id("confirm-name").fill("王 芳")
    page.get_by_test_id("confirm").click()
    page.get_by_test_id("confirmed").wait_for()
    screenshot(page, "tenant-confirmed-phone")
    with rig.sessions() as s:
        assert s.get(StatementConfirmation, (run, "A101", "ACME")) is not None
    page.goto(url.split("?")[0] + "?lang=en")
    assert "Confirmed at" in page.get_by_test_id("confirmed").inner_text()
    context.close()


def test_changed_unit_and_expired_links_get_a_clear_refusal(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    context = phone(browser)
    page = context.new_page()
    beta = rig.web.links.link_for(StatementKey(rig.seeded.latest, "A102", "BETA"))
    page.goto(f"{base_url}{beta.path().replace('/A102/', '/A101/')}")
    refusal = page.get_by_test_id("refused")
    assert refusal.get_attribute("data-reason") == "wrong_unit"
    assert "另一个单元" in refusal.inner_text()
    assert "ACME" not in page.content() and "BETA" not in page.content()
    screenshot(page, "tenant-refused-wrong-unit")
    past = TenantLinkService(
        rig.sessions, rig.secret, clock=lambda: datetime.now(UTC) - timedelta(days=365)
    )
    expired = past.link_for(StatementKey(rig.seeded.posted[min(rig.seeded.posted)], "A101", "ACME"))
    reply = page.goto(f"{base_url}{expired.path()}?lang=en")
    assert reply is not None and reply.status == 410
    assert page.get_by_test_id("refused").get_attribute("data-reason") == "expired"
    assert "expired" in page.get_by_test_id("refused").inner_text()
    screenshot(page, "tenant-refused-expired")
    context.close()


def test_finance_reviews_approves_with_four_eyes_and_confirms_posting(
    rig: WebRig, base_url: str, browser: Any
) -> None:
    context = desktop(browser)
    page = context.new_page()
    sign_in(page, base_url, "fin-a", "/finance/runs")
    page.click(f"tr[data-run='{rig.seeded.draft}'] a")
    page.get_by_test_id("action-review").click()
    assert page.get_by_test_id("run-status").inner_text() == "已复核"
    page.get_by_test_id("action-approve").click()  # fin-a reviewed it: four eyes refuse
    assert "four eyes" in page.get_by_test_id("action-error").inner_text()
    assert page.get_by_test_id("run-status").inner_text() == "已复核"
    screenshot(page, "finance-run-four-eyes")
    context.close()
    context = desktop(browser)
    page = context.new_page()
    sign_in(page, base_url, "fin-a2", f"/finance/runs/{rig.seeded.draft}")
    page.get_by_test_id("action-approve").click()
    assert page.get_by_test_id("run-status").inner_text() == "已批准"
    trail = page.get_by_test_id("trail").inner_text()
    assert "fin-a2 批准" in trail and "fin-a 复核" in trail
    assert trail.count("批准") == 1 and trail.count("复核") == 1  # once per event
    screenshot(page, "finance-run-approved")
    page.get_by_test_id("action-post").click()  # asked first, on a page of its own
    page.get_by_test_id("confirm-post").wait_for()
    assert page.get_by_test_id("confirm-site").inner_text() == "park-a"
    assert page.get_by_test_id("confirm-statements").inner_text() == "3"
    assert page.get_by_test_id("confirm-reviewed-by").inner_text() == "fin-a"
    assert page.get_by_test_id("confirm-approved-by").inner_text() == "fin-a2"
    screenshot(page, "finance-run-confirm-post")
    page.get_by_test_id("cancel").click()  # cancelling changes nothing
    assert page.get_by_test_id("run-status").inner_text() == "已批准"
    page.get_by_test_id("action-post").click()
    page.get_by_test_id("confirm").click()
    assert page.get_by_test_id("run-status").inner_text() == "已过账"
    with rig.sessions() as s:
        run = s.get(ApportionRun, rig.seeded.draft)
        assert run is not None
        assert (run.status, run.reviewed_by, run.approved_by, run.posted_by) == (
            "posted",
            "fin-a",
            "fin-a2",
            "fin-a2",
        )
    page.goto(f"{base_url}/finance/runs?lang=en")
    screenshot(page, "finance-runs")
    context.close()


def site_toml(port: int) -> str:
    return f"""site = "park-a"
gateway = "gw-live"
metrics_port = 0
health_interval_s = 1

[[groups]]
name = "billing"
interval_s = 1
quantities = ["energy_import"]

[[lines]]
name = "l1"
tcp = "127.0.0.1:{port}"
timeout_s = 0.5

[[lines.meters]]
id = "U1"
address = "000000000001"
role = "main"

[[lines.meters]]
id = "U2"
address = "000000000002"
parent = "U1"
"""


@pytest.mark.mosquitto
def test_engineer_sees_a_gateway_go_offline_when_it_dies(
    rig: WebRig, base_url: str, browser: Any, tmp_path: Path, mosquitto_server: Any
) -> None:
    line = Dlt645Line(
        [SimulatedMeter(f"{n:012d}", LoadModel(5.0, seed=n), clock=SystemClock()) for n in (1, 2)]
    )
    sim_port, stop_sim = serve_in_thread(line)
    identity = GatewayIdentity.create(tmp_path / "data" / "gateway.key")
    with rig.sessions.begin() as s:
        register_gateway(s, "park-a", "gw-live", identity.public_key)
    (tmp_path / "site.toml").write_text(site_toml(sim_port))
    feed = GatewayFeed(rig.web.gateways, mosquitto_server.url, client_id="web-browser-feed")
    feed.start()
    env = {**os.environ, "MF_DATA_DIR": str(tmp_path / "data"), "MF_MQTT_URL": mosquitto_server.url}
    log = (tmp_path / "gateway.log").open("ab")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "meterflow", "edge", "run", str(tmp_path / "site.toml")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    context = desktop(browser)
    try:
        page = context.new_page()
        sign_in(page, base_url, "eng-a", "/engineer/gateways")
        state = page.locator("[data-testid=state-gw-live]")
        # the page refreshes itself every 5 s: no reload by the test
        page.wait_for_selector("[data-testid=state-gw-live][data-state=online]", timeout=30_000)
        page.goto(f"{base_url}/engineer/gateways/gw-live")  # refreshes itself, too
        page.wait_for_selector("[data-testid=meters] td:has-text('U2')", timeout=30_000)
        screenshot(page, "engineer-gateway-online")
        page.goto(f"{base_url}/engineer/gateways")
        gateway.send_signal(signal.SIGKILL)
        gateway.wait(10)
        page.wait_for_selector("[data-testid=state-gw-live][data-state=offline]", timeout=30_000)
        assert state.inner_text() == "离线"
        screenshot(page, "engineer-gateway-offline")
    finally:
        context.close()
        if gateway.poll() is None:
            gateway.send_signal(signal.SIGKILL)
            gateway.wait(10)
        feed.stop()
        stop_sim()
        log.close()
