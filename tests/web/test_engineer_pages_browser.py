"""The engineer pages in Debian Chromium (headless, Playwright), on a phone and a desktop, in
Chinese and English: a gateway gone offline shows its last report's age and is marked out of
date, a sidelined meter says why and since when, commands show acknowledged / failed / timed
out, the claim token has a copy button and the exact provisioning commands; axe-core finds
nothing serious on any of them; the live sections update without moving focus or scroll.
And provisioning end to end: a claim made on the engineer page, the real ``edge provision`` and
``edge run`` with nothing but MF_DATA_DIR, and the gateway online on the page."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from cloud.gateways.models import GatewayStatus
from cloud.registry.service import register_gateway
from cloud.web.rendering import local_time
from edge.wire import (
    ClockState,
    HealthPayload,
    LineHealth,
    MeterHealth,
    OutboxHealth,
    key_id,
    seal_health,
    sign_compact,
)
from simulators.dlt645_meter import Dlt645Line, SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SystemClock
from tests.support import servers
from tests.support.axe import assert_accessible
from tests.support.browser import (
    PASSWORD,
    PHONE,
    WebRig,
    desktop,
    make_rig,
    phone,
    screenshot,
    serve,
)
from tests.support.secured_broker import start_secured_mosquitto

pytestmark = pytest.mark.timeout(180)
TOPIC = "mf/v1/park-a/gw-a/up/health"
#: the two languages: query string, and the texts each page must show in it
TEXTS = {
    "zh-CN": {
        "reported": "最后上报 3 分钟前",
        "ago": "3 分钟前",
        "stale": "数据已过时",
        "offline": "离线",
        "sidelined": "已暂停轮询",
        "reason": "原因：连续 12 次读取失败",
        "since": "暂停自",
        "timed_out": "超时未答复",
        "acknowledged": "已执行",
        "failed": "执行失败",
        "sent": "已发送，等待答复",
        "copied": "已复制到剪贴板",
    },
    "en": {
        "reported": "Last report 3 min ago",
        "ago": "3 min ago",
        "stale": "out of date",
        "offline": "offline",
        "sidelined": "sidelined",
        "reason": "Why: 12 failed reads in a row",
        "since": "sidelined since",
        "timed_out": "Timed out",
        "acknowledged": "Acknowledged",
        "failed": "Failed",
        "sent": "Sent, awaiting answer",
        "copied": "Copied to the clipboard",
    },
}


def health(key: Ed25519PrivateKey, sent_at: datetime, failures: int) -> HealthPayload:
    """gw-a's report: M1 answers, M2 sidelined after ``failures`` failed reads in a row."""
    return HealthPayload(
        gateway="gw-a",
        kid=key_id(key.public_key()),
        sent_at=sent_at,
        epoch=1,
        clock=ClockState.SYNCED,
        uptime_s=7200,
        rounds=240,
        overruns=0,
        outbox=OutboxHealth(
            pending_readings=3,
            unacked_envelopes=1,
            oldest_age_s=30.0,
            disk_bytes=4096,
            max_bytes=1 << 20,
            evicted_readings=0,
            alarm=False,
        ),
        lines=[LineHealth(line="rs485-1", utilisation=0.3, last_round_s=1.2)],
        meters=[
            MeterHealth(
                meter="M1",
                line="rs485-1",
                reads=240,
                failures=0,
                consecutive_failures=0,
                sidelined=False,
                last_good=sent_at,
            ),
            MeterHealth(
                meter="FAULTY-METER-LIFT-B2",
                line="rs485-1",
                reads=240,
                failures=failures,
                consecutive_failures=failures,
                sidelined=True,
                last_good=sent_at - timedelta(hours=1),
            ),
        ],
    )


def ack(key: Ed25519PrivateKey, cmd_id: str, status: str, detail: str) -> bytes:
    """gw-a's signed answer to a command."""
    payload = {
        "schema": "mf.ack/1",
        "cmd_id": cmd_id,
        "site": "park-a",
        "gateway": "gw-a",
        "status": status,
        "detail": detail,
        "result": {},
        "finished_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    return sign_compact(
        {"alg": "EdDSA", "kid": key_id(key.public_key())}, json.dumps(payload).encode(), key
    )


@dataclass
class World:
    """The rig served, gw-a offline with an old report, and its commands by expected state."""

    rig: WebRig
    url: str
    first_report: datetime
    commands: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    rig = make_rig(tmp_path_factory.mktemp("engineer-pages"), months=1)
    key = rig.gateway_keys["gw-a"]
    now = datetime.now(UTC)
    first = now - timedelta(minutes=25)
    # FAULTY-METER-LIFT-B2 sidelined in the first report and still in the second
    rig.web.gateways.take_health(TOPIC, seal_health(health(key, first, 9), key))
    rig.web.gateways.take_health(TOPIC, seal_health(health(key, now, 12), key))
    rig.web.gateways.take_state("mf/v1/park-a/gw-a/state", b"online")
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.headers["Authorization"] = f"Bearer {rig.token(client, 'eng-a')}"

        def send(command: str, ttl_s: float) -> str:
            reply = client.post(
                "/api/v1/gateways/gw-a/commands", json={"command": command, "ttl_s": ttl_s}
            )
            assert reply.status_code == 200, reply.text
            assert reply.json()["status"] == "sent"
            return str(reply.json()["cmd_id"])

        commands = {
            "timed_out": send("sync_time", 1),
            "acknowledged": send("reload_config", 300),
            "failed": send("reload_config", 300),
            "sent": send("sync_time", 300),
        }
        rig.web.commands.take_ack(ack(key, commands["acknowledged"], "ok", "reloaded"))
        rig.web.commands.take_ack(
            ack(key, commands["failed"], "error", "site.toml line 3: expected a table")
        )
        rig.web.gateways.take_state("mf/v1/park-a/gw-a/state", b"offline")
        with rig.sessions.begin() as s:  # its last report came 3 min 10 s ago
            s.execute(
                update(GatewayStatus)
                .where(GatewayStatus.gateway_id == "gw-a")
                .values(last_seen=datetime.now(UTC) - timedelta(seconds=190))
            )
        time.sleep(1.5)  # the sync_time sent with a 1-s TTL has expired unanswered
        yield World(rig, url, first, commands)
    rig.sessions.kw["bind"].dispose()


def sign_in(page: Any, base_url: str, username: str, target: str) -> None:
    page.goto(f"{base_url}{target}")
    assert "/login" in page.url
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{target.split('?')[0]}*")


def assert_fits(page: Any, *locators: Any) -> None:
    """Nothing wider than the viewport, and each element wholly inside it."""
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for locator in locators:
        box = locator.bounding_box()
        assert box is not None, locator
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (locator, box)


@pytest.mark.parametrize("device", ["phone", "desktop"])
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_engineer_pages_tell_the_truth_on_phone_and_desktop(
    world: World, browser: Any, device: str, lang: str
) -> None:
    texts, name = TEXTS[lang], f"{device}-{lang}"
    context = phone(browser) if device == "phone" else desktop(browser)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=world.url)
    page = context.new_page()
    try:
        sign_in(page, world.url, "eng-a", f"/engineer/gateways?lang={lang}")
        if device == "phone":
            assert page.viewport_size == PHONE
        # the list: the offline gateway's last report with its age, marked out of date
        assert page.locator("meta[http-equiv=refresh]").count() == 0
        report = page.locator("[data-testid=report-gw-a]")
        column = page.locator("[data-testid=gateways] th").nth(3).text_content()
        assert f"{column} {texts['ago']}" == texts["reported"]
        assert report.inner_text().startswith(texts["ago"])
        assert page.locator("[data-testid=stale-gw-a]").inner_text() == texts["stale"]
        assert page.locator("[data-testid=state-gw-a]").inner_text() == texts["offline"]
        chip = page.locator("[data-testid=chip-gw-a-FAULTY-METER-LIFT-B2]")
        assert texts["sidelined"] in chip.inner_text()
        assert_fits(page, chip, report)
        screenshot(page, f"engineer-gateways-{name}")
        assert_accessible(page, f"engineer-gateways-{name}")

        # a gateway: sidelined reason and since when; command states
        page.goto(f"{world.url}/engineer/gateways/gw-a?lang={lang}")
        assert page.locator("meta[http-equiv=refresh]").count() == 0
        assert texts["reported"] in page.locator("[data-testid=report]").inner_text()
        assert page.locator("[data-testid=stale-note]").is_visible()
        why = page.locator("[data-testid=sidelined-FAULTY-METER-LIFT-B2]")
        assert texts["reason"] in why.inner_text()
        assert f"{texts['since']} {local_time(world.first_report)}" in why.inner_text()
        states = []
        for state, cmd_id in world.commands.items():
            cell = page.locator(f"[data-cmd='{cmd_id}'] [data-testid=cmd-state]")
            assert (cell.get_attribute("data-state"), cell.inner_text()) == (state, texts[state])
            states.append(cell)
        assert_fits(page, why, *states)
        screenshot(page, f"engineer-gateway-{name}")
        assert_accessible(page, f"engineer-gateway-{name}")

        # a claim token: copy button and the commands with the values filled in
        page.goto(f"{world.url}/engineer/claim-tokens?lang={lang}")
        assert_accessible(page, f"engineer-claim-form-{name}")
        gateway = f"gw-{device}-{lang.lower()}"
        page.fill("input[name=gateway]", gateway)
        page.fill("textarea[name=site_config]", f'site = "park-a"\ngateway = "{gateway}"\n')
        page.fill("input[name=broker_password]", "broker-pw-of-the-gateway")
        page.click("button[type=submit].primary")
        token = page.locator("[data-testid=claim-token]").inner_text().strip()
        assert len(token) >= 40
        commands = page.locator("[data-testid=provision-commands]").inner_text().splitlines()
        assert commands == [
            "export MF_DATA_DIR=/var/lib/meterflow",
            f"meterflow edge provision {world.url}",
            "meterflow edge check",
            "meterflow edge run",
        ]
        page.click("[data-testid=copy-token]")
        page.wait_for_selector(f"[data-copy-status]:has-text('{texts['copied']}')")
        assert page.evaluate("navigator.clipboard.readText()") == token
        page.click("[data-testid=copy-commands]")
        page.wait_for_function(
            "async () => (await navigator.clipboard.readText()).includes('edge run')"
        )
        assert page.evaluate("navigator.clipboard.readText()") == "\n".join(commands) + "\n"
        assert_fits(page, page.locator("[data-testid=claim-token]"))
        screenshot(page, f"engineer-claim-{name}")
        assert_accessible(page, f"engineer-claim-{name}")
    finally:
        context.close()


def test_live_sections_update_without_moving_focus_or_scroll(world: World, browser: Any) -> None:
    rig = world.rig
    key = Ed25519PrivateKey.generate()
    with rig.sessions.begin() as s:
        register_gateway(s, "park-a", "gw-live-a", key.public_key())
    topic = "mf/v1/park-a/gw-live-a"
    report = health(key, datetime.now(UTC), 4).model_copy(update={"gateway": "gw-live-a"})
    rig.web.gateways.take_health(f"{topic}/up/health", seal_health(report, key))
    rig.web.gateways.take_state(f"{topic}/state", b"online")
    context = phone(browser)
    page = context.new_page()
    try:
        sign_in(page, world.url, "eng-a", "/engineer/gateways/gw-live-a?lang=en")
        page.evaluate("window.notReloaded = true")
        page.evaluate(
            "document.querySelector('[data-testid=refresh]').focus({preventScroll: true});"
            "window.scrollTo(0, document.documentElement.scrollHeight / 2)"
        )
        scrolled = page.evaluate("window.scrollY")
        assert scrolled > 0
        rig.web.gateways.take_state(f"{topic}/state", b"offline")
        page.wait_for_selector("[data-testid=state][data-state=offline]", timeout=15_000)
        assert page.evaluate("window.notReloaded") is True
        assert page.evaluate("document.activeElement.dataset.testid") == "refresh"
        assert abs(page.evaluate("window.scrollY") - scrolled) <= 1
        assert "Updated" in page.locator("[data-live-status]").inner_text()
        screenshot(page, "engineer-live-updated-phone-en")

        # focus inside the live section pauses the updates; leaving it resumes them
        page.goto(f"{world.url}/engineer/gateways?lang=en")
        page.focus("a[href^='/engineer/gateways/gw-live-a']")
        rig.web.gateways.take_state(f"{topic}/state", b"online")
        page.wait_for_selector("[data-live-status]:has-text('Paused')", timeout=15_000)
        assert page.locator("[data-testid=state-gw-live-a]").get_attribute("data-state") == (
            "offline"
        )
        page.evaluate("document.activeElement.blur()")
        page.wait_for_selector("[data-testid=state-gw-live-a][data-state=online]", timeout=15_000)
    finally:
        context.close()


SITE_TOML = """site = "park-p"
gateway = "gw-p1"
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
id = "P1"
address = "000000000001"
role = "main"
"""


def meterflow(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    """Run the real ``meterflow`` command; its stdout (fails the test on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "meterflow", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"meterflow {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


@pytest.mark.mosquitto
def test_provisioned_on_the_engineer_page_the_gateway_runs_with_only_its_data_dir(
    browser: Any, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data_dir = tmp_path_factory.mktemp("secured-mosquitto")
    base = tmp_path_factory.getbasetemp()
    servers.make_traversable(
        data_dir, base.parent if base.parent.name.startswith("pytest-of-") else base
    )
    broker = start_secured_mosquitto(
        data_dir, tmp_path / "auth", (("park-p", "gw-p1"),), ("mf-api",)
    )
    sim_port, stop_sim = serve_in_thread(
        Dlt645Line([SimulatedMeter("000000000001", LoadModel(5.0, seed=1), clock=SystemClock())])
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MF_")}
    cloud_env = {
        **clean,
        "MF_DATA_DIR": str(tmp_path / "cloud"),
        "MF_MQTT_URL": broker.url,
        "MF_MQTT_USERNAME": "mf-api",
        "MF_MQTT_PASSWORD": broker.passwords["mf-api"],
        "MF_WEB_DEV": "1",
    }
    gateway_env = {**clean, "MF_DATA_DIR": str(tmp_path / "gateway")}  # and nothing else
    gateway = None
    context = desktop(browser)
    try:
        meterflow("cloud", "migrate", env=cloud_env)
        meterflow(
            "cloud", "web-account", "eng-p", "--role", "engineer", "--site", "park-p",
            env={**cloud_env, "MF_WEB_ACCOUNT_PASSWORD": PASSWORD},
        )  # fmt: skip
        with servers.cloud_api(cloud_env, tmp_path / "api.log") as (_api, url):
            page = context.new_page()
            sign_in(page, url, "eng-p", "/engineer/claim-tokens")
            page.fill("input[name=site]", "park-p")
            page.fill("input[name=gateway]", "gw-p1")
            page.fill("textarea[name=site_config]", SITE_TOML.format(port=sim_port))
            page.fill("input[name=broker_password]", broker.passwords["gw-p1"])
            page.click("button[type=submit].primary")
            token = page.locator("[data-testid=claim-token]").inner_text().strip()
            steps = page.locator("[data-testid=provision-commands]").inner_text().splitlines()
            assert steps[1:] == [
                f"meterflow edge provision {url}",
                "meterflow edge check",
                "meterflow edge run",
            ]
            # the page's steps, on this test's data directory (MF_DATA_DIR) for steps[0]'s
            provisioned = json.loads(
                meterflow("edge", "provision", url, env=gateway_env, stdin=token + "\n")
            )
            assert (provisioned["gateway"], provisioned["data_dir"]) == (
                "gw-p1",
                str(tmp_path / "gateway"),
            )
            assert "site park-p, gateway gw-p1" in meterflow("edge", "check", env=gateway_env)
            with (tmp_path / "gateway.log").open("wb") as log:
                gateway = subprocess.Popen(
                    [sys.executable, "-m", "meterflow", "edge", "run"],
                    env=gateway_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            page.goto(f"{url}/engineer/gateways")
            # no reload by the test: the live section updates itself
            page.wait_for_selector("[data-testid=state-gw-p1][data-state=online]", timeout=60_000)
            page.wait_for_selector("[data-testid=chip-gw-p1-P1]", timeout=30_000)
            screenshot(page, "engineer-provisioned-online")
            assert_accessible(page, "engineer-provisioned-online")
    finally:
        context.close()
        if gateway is not None and gateway.poll() is None:
            gateway.send_signal(signal.SIGTERM)
            try:
                gateway.wait(15)
            except subprocess.TimeoutExpired:
                gateway.kill()
                gateway.wait(10)
        stop_sim()
        servers.stop_server(broker)
    log_text = (tmp_path / "gateway.log").read_text(errors="replace")
    assert "Not authorized" not in log_text, log_text[-2000:]
