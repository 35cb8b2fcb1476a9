"""Revoking a stolen gateway on the engineer pages in Debian Chromium (Playwright), on a phone
in Chinese and a desktop in English: the gateway's button leads to a confirmation page that
refuses to act until its box is ticked, then the gateway's page shows who revoked it, when and
why, with no command buttons left, and the list marks it; axe-core finds nothing serious on
any of them. Decision 0043."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.registry.service import find_key, register_gateway
from cloud.staff.audit import entries_for
from cloud.web.rendering import local_time
from edge.wire import key_id
from tests.support.axe import assert_accessible
from tests.support.browser import WebRig, desktop, make_rig, phone, screenshot, serve
from tests.web.test_engineer_pages_browser import sign_in

pytestmark = pytest.mark.timeout(180)
TEXTS = {
    "zh-CN": {
        "button": "吊销网关…",
        "title": "吊销网关",
        "unconfirmed": "请勾选确认框后再吊销网关。",
        "revoked": "已吊销",
        "stolen": "被盗",
        "by": "操作人 eng-a",
        "done": "网关已吊销",
    },
    "en": {
        "button": "Revoke gateway…",
        "title": "Revoke gateway",
        "unconfirmed": "Tick the confirmation box to revoke the gateway.",
        "revoked": "Revoked",
        "stolen": "stolen",
        "by": "by eng-a",
        "done": "Gateway revoked",
    },
}


@dataclass
class World:
    rig: WebRig
    url: str
    keys: dict[str, Ed25519PrivateKey]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    rig = make_rig(tmp_path_factory.mktemp("revoke-pages"), months=1)
    keys = {g: Ed25519PrivateKey.generate() for g in ("gw-phone", "gw-desk")}
    with rig.sessions.begin() as s:
        for gateway, key in keys.items():
            register_gateway(s, "park-a", gateway, key.public_key())
    with serve(rig.app) as url:
        yield World(rig, url, keys)
    rig.sessions.kw["bind"].dispose()


@pytest.mark.parametrize(("device", "lang"), [("phone", "zh-CN"), ("desktop", "en")])
def test_an_engineer_revokes_a_stolen_gateway_after_confirming(
    world: World, browser: Any, device: str, lang: str
) -> None:
    texts, name = TEXTS[lang], f"{device}-{lang}"
    gateway = "gw-phone" if device == "phone" else "gw-desk"
    context = phone(browser) if device == "phone" else desktop(browser)
    page = context.new_page()
    try:
        sign_in(page, world.url, "eng-a", f"/engineer/gateways/{gateway}?lang={lang}")
        button = page.locator("[data-testid=revoke]")
        assert button.inner_text() == texts["button"]
        button.click()
        page.wait_for_selector("[data-testid=revoke-confirm]")
        assert texts["title"] in page.locator("h1").inner_text()
        assert f"broker-users.sh remove {gateway}" in page.content()
        screenshot(page, f"gateway-revoke-confirm-{name}")
        assert_accessible(page, f"gateway-revoke-confirm-{name}")

        # the box is required: the browser does not send the form without it, and the
        # server refuses it too (a browser that ignores `required`)
        page.select_option("[data-testid=revoke-reason]", "stolen")
        page.fill("[data-testid=revoke-note]", "cabinet forced open")
        page.evaluate("document.querySelector('[data-testid=revoke-confirm-box]').required = false")
        page.click("[data-testid=revoke-submit]")
        assert page.locator("[data-testid=revoke-error]").inner_text() == texts["unconfirmed"]
        with world.rig.sessions() as s:
            assert not find_key(s, key_id(world.keys[gateway].public_key())).revoked  # type: ignore[union-attr]
        assert_accessible(page, f"gateway-revoke-unconfirmed-{name}")

        page.select_option("[data-testid=revoke-reason]", "stolen")
        page.check("[data-testid=revoke-confirm-box]")
        page.click("[data-testid=revoke-submit]")
        page.wait_for_selector("[data-testid=revoked]")

        assert page.locator("[data-testid=revoke-done]").inner_text() == texts["done"]
        state = page.locator("[data-testid=revoked]").inner_text()
        with world.rig.sessions() as s:
            assert find_key(s, key_id(world.keys[gateway].public_key())).revoked  # type: ignore[union-attr]
            (entry,) = entries_for(s, [f"gateway:{gateway}"])
        assert texts["revoked"] in state and texts["stolen"] in state and texts["by"] in state
        assert local_time(entry.at) in state and "cabinet forced open" in state
        assert page.locator("[data-testid=revoke]").count() == 0
        assert page.locator("form[action*=commands]").count() == 0
        screenshot(page, f"gateway-revoked-{name}")
        assert_accessible(page, f"gateway-revoked-{name}")

        page.goto(f"{world.url}/engineer/gateways?lang={lang}")
        badge = page.locator(f"[data-testid=revoked-{gateway}]")
        assert badge.inner_text() == {"en": "revoked", "zh-CN": "已吊销"}[lang]
        assert_accessible(page, f"gateway-revoked-list-{name}")
    finally:
        context.close()
