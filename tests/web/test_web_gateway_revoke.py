"""Revoking a gateway over HTTP (decision 0043): ``POST /api/v1/gateways/{id}/revoke`` and the
engineer page's confirmation form. Only an engineer of the site or an admin may; another
site's engineer is told "not found", a manager or finance account is refused; a second revoke
changes nothing; the audit log has one entry; the gateway's claim tokens, commands, health
and answers are shut; and it comes back only as an approved replacement. On SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.gateways.health import HealthRejected
from cloud.gateways.provisioning import ClaimTokenExpired, ProvisioningService
from cloud.registry.service import register_gateway
from cloud.staff.audit import entries_for
from edge.wire import key_id, public_key_b64, seal_health
from tests.support import servers
from tests.support.browser import PASSWORD, WebRig, make_rig, serve
from tests.web.test_web_gateways import health

SITE_TOML = 'site = "park-a"\ngateway = "{gw}"\n'


def add_manager(rig: WebRig) -> None:
    rig.web.accounts.create_account(
        "mgr-a", PASSWORD, "manager", ["park-a"], buildings=["park-a/A"]
    )


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def rig(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[WebRig]:
    work = tmp_path_factory.mktemp(f"revoke-{request.param}")
    if request.param == "sqlite":
        rig = make_rig(work, months=1)
        rig.web.accounts.create_account(
            "mgr-a", PASSWORD, "manager", ["park-a"], buildings=["park-a/A"]
        )
        yield rig
        rig.sessions.kw["bind"].dispose()
        return
    with servers.fresh_postgres_database(request.getfixturevalue("postgres_server"), "rv") as url:
        rig = make_rig(work, url=url, months=1)
        rig.web.accounts.create_account(
            "mgr-a", PASSWORD, "manager", ["park-a"], buildings=["park-a/A"]
        )
        yield rig
        rig.sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def client(rig: WebRig) -> Iterator[httpx.Client]:
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def bearer(client: httpx.Client, rig: WebRig, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {rig.token(client, who)}"}


def gateway(rig: WebRig, name: str) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    with rig.sessions.begin() as s:
        register_gateway(s, "park-a", name, key.public_key())
    return key


def redeem(service: ProvisioningService, token: str) -> tuple[Ed25519PrivateKey, bool]:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    reply = service.redeem(token, public_key_b64(public), key_id(public))
    return key, reply.awaiting_approval


def test_the_api_revokes_once_and_shuts_the_gateways_ways_in(
    rig: WebRig, client: httpx.Client
) -> None:
    key = gateway(rig, "gw-r1")
    provisioning: ProvisioningService = rig.app.state.services.provisioning
    eng = bearer(client, rig, "eng-a")
    claim = client.post(  # new hardware asked for before the theft, not yet redeemed
        "/api/v1/claim-tokens",
        json={"site": "park-a", "gateway": "gw-r1", "site_config": SITE_TOML.format(gw="gw-r1"),
              "replace": True},
        headers=eng,
    )  # fmt: skip
    sent = client.post(
        "/api/v1/gateways/gw-r1/commands", json={"command": "sync_time"}, headers=eng
    )
    assert claim.status_code == 201 and sent.status_code == 200, (claim.text, sent.text)
    url = "/api/v1/gateways/gw-r1/revoke"

    refused = {
        "manager": client.post(url, json={"reason": "lost"}, headers=bearer(client, rig, "mgr-a")),
        "finance": client.post(url, json={"reason": "lost"}, headers=bearer(client, rig, "fin-a")),
        "other site": client.post(
            url, json={"reason": "lost"}, headers=bearer(client, rig, "eng-b")
        ),
        "no note": client.post(url, json={"reason": "other", "note": "  "}, headers=eng),
        "bad reason": client.post(url, json={"reason": "borrowed"}, headers=eng),
        "long note": client.post(url, json={"reason": "lost", "note": "x" * 501}, headers=eng),
    }
    first = client.post(url, json={"reason": "stolen", "note": "cabinet forced"}, headers=eng)
    second = client.post(url, json={"reason": "lost"}, headers=bearer(client, rig, "admin"))

    assert {k: r.status_code for k, r in refused.items()} == {
        "manager": 403,
        "finance": 403,
        "other site": 404,
        "no note": 422,
        "bad reason": 400,
        "long note": 400,
    }
    assert "needs a note" in refused["no note"].json()["detail"]
    assert first.status_code == 200, first.text
    done = first.json()
    assert (done["changed"], done["claims_closed"], done["commands_cancelled"]) == (True, 1, 1)
    revocation = done["revocation"]
    assert (revocation["reason"], revocation["note"], revocation["revoked_by"]) == (
        "stolen",
        "cabinet forced",
        "eng-a",
    )
    assert revocation["kids"] == [key_id(key.public_key())]
    assert "broker-users.sh remove gw-r1" in done["broker_user"]
    # a second revoke: 200, nothing changed, the first revocation stands
    assert second.status_code == 200 and second.json()["changed"] is False
    assert second.json()["revocation"] == revocation
    with rig.sessions() as s:
        trail = entries_for(s, ["gateway:gw-r1"])
    (entry,) = [e for e in trail if e.action == "revoke_gateway"]  # one: the second did nothing
    assert entry.actor == "eng-a"
    detail = json.loads(entry.detail)
    assert detail["from"].startswith("api ") and detail["note"] == "cabinet forced"
    assert detail["after"]["reason"] == "stolen"

    # shut: its claim expired, its command cancelled, no new command, health refused
    with pytest.raises(ClaimTokenExpired):
        redeem(provisioning, claim.json()["token"])
    shown = client.get("/api/v1/gateways/gw-r1", headers=eng).json()
    assert [c["state"] for c in shown["commands"]] == ["cancelled"]
    assert (shown["gateway"]["revoked_reason"], shown["gateway"]["revoked_by"]) == (
        "stolen",
        "eng-a",
    )
    again = client.post("/api/v1/gateways/gw-r1/commands", json={"command": "sync_time"},
                        headers=eng)  # fmt: skip
    assert again.status_code == 409 and "revoked" in again.json()["detail"]
    with pytest.raises(HealthRejected, match="revoked_key"):
        rig.web.gateways.take_health(
            "mf/v1/park-a/gw-r1/up/health", seal_health(health(key, "gw-r1"), key)
        )


def test_a_revoked_gateway_comes_back_only_as_an_approved_replacement(
    rig: WebRig, client: httpx.Client
) -> None:
    gateway(rig, "gw-r2")
    provisioning: ProvisioningService = rig.app.state.services.provisioning
    eng = bearer(client, rig, "eng-a")
    revoked = client.post("/api/v1/gateways/gw-r2/revoke", json={"reason": "lost"}, headers=eng)
    assert revoked.status_code == 200, revoked.text
    body = {"site": "park-a", "gateway": "gw-r2", "site_config": SITE_TOML.format(gw="gw-r2")}

    plain = client.post("/api/v1/claim-tokens", json=body, headers=eng)
    replacing = client.post("/api/v1/claim-tokens", json={**body, "replace": True}, headers=eng)

    assert plain.status_code == 400 and "was revoked" in plain.json()["detail"]
    assert replacing.status_code == 201, replacing.text
    new, waits = redeem(provisioning, replacing.json()["token"])
    assert waits  # an engineer's replacement waits for an admin
    view = client.get("/api/v1/gateways/gw-r2", headers=eng).json()["gateway"]
    assert view["revoked_reason"] == "lost" and view["replacement_pending"] is True
    (pending,) = [r for r in rig.web.replacements.listing() if r.gateway == "gw-r2"]
    decided = client.post(f"/api/v1/replacements/{pending.id}", json={"decision": "approve"},
                          headers=bearer(client, rig, "admin"))  # fmt: skip
    assert decided.status_code == 200, decided.text
    view = client.get("/api/v1/gateways/gw-r2", headers=eng).json()["gateway"]
    assert view["revoked_at"] is None and view["revoked_reason"] is None
    payload = health(new, "gw-r2")
    assert rig.web.gateways.take_health("mf/v1/park-a/gw-r2/up/health", seal_health(payload, new))


def test_the_page_form_asks_for_confirmation_and_keeps_to_the_site(
    rig: WebRig, client: httpx.Client
) -> None:
    gateway(rig, "gw-r3")
    eng = bearer(client, rig, "eng-a")
    page = "/engineer/gateways/gw-r3/revoke?lang=en"

    shown = client.get(page, headers=eng)
    unconfirmed = client.post(page, data={"reason": "lost"}, headers=eng)
    no_note = client.post(page, data={"reason": "other", "confirm": "yes"}, headers=eng)
    elsewhere = client.post(page, data={"reason": "lost", "confirm": "yes"},
                            headers=bearer(client, rig, "eng-b"))  # fmt: skip
    still = client.get("/api/v1/gateways/gw-r3", headers=eng).json()["gateway"]
    done = client.post(page, data={"reason": "decommissioned", "confirm": "yes"}, headers=eng)

    assert shown.status_code == 200 and "Revoke gateway gw-r3" in shown.text
    assert "broker-users.sh remove gw-r3" in shown.text
    assert unconfirmed.status_code == 422 and "Tick the confirmation box" in unconfirmed.text
    assert no_note.status_code == 422 and "needs a note" in no_note.text
    assert elsewhere.status_code == 404
    assert still["revoked_at"] is None
    assert done.status_code == 303 and "revoked=1" in done.headers["location"]
    gateway_page = client.get(done.headers["location"], headers=eng)
    assert 'data-testid="revoked"' in gateway_page.text and "decommissioned" in gateway_page.text
    assert 'data-testid="revoke"' not in gateway_page.text  # no button, no commands
    zh = client.get("/engineer/gateways?lang=zh-CN", headers=eng).text
    assert 'data-testid="revoked-gw-r3">已吊销<' in zh
