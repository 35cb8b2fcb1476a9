"""Gateways' health for the engineer pages: signed health verified with the registered key,
online/offline from the state topic, commands signed, recorded, published and answered; and
the feed on a real mosquitto."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.gateways.dispatch import DispatchError, UnknownGatewayTarget
from cloud.gateways.feed import GatewayFeed
from cloud.gateways.health import HealthRejected, UnknownGateway
from cloud.registry.service import register_meter
from cloud.staff.accounts import Principal, Role
from edge.wire import (
    ClockState,
    HealthPayload,
    LineHealth,
    MeterHealth,
    OutboxHealth,
    key_id,
    parse_compact,
    seal_health,
    sign_compact,
)
from tests.support.browser import WebRig, make_rig, serve

ENGINEER_A = Principal("eng-a", Role.ENGINEER, frozenset({"park-a"}))
ENGINEER_B = Principal("eng-b", Role.ENGINEER, frozenset({"park-b"}))
TOPIC = "mf/v1/park-a/gw-a/up/health"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebRig]:
    rig = make_rig(tmp_path_factory.mktemp("gateways"), months=1)
    yield rig
    rig.sessions.kw["bind"].dispose()


def health(key: Ed25519PrivateKey, gateway: str = "gw-a", pending: int = 7) -> HealthPayload:
    now = datetime.now(UTC)
    return HealthPayload(
        gateway=gateway,
        kid=key_id(key.public_key()),
        sent_at=now,
        epoch=2,
        clock=ClockState.SYNCED,
        uptime_s=3600,
        rounds=100,
        overruns=0,
        outbox=OutboxHealth(
            pending_readings=pending,
            unacked_envelopes=2,
            oldest_age_s=42.0,
            disk_bytes=4096,
            max_bytes=1 << 20,
            evicted_readings=0,
            alarm=False,
        ),
        lines=[LineHealth(line="l1", utilisation=0.2, last_round_s=0.4)],
        meters=[
            MeterHealth(
                meter="M1",
                line="l1",
                reads=10,
                failures=0,
                consecutive_failures=0,
                sidelined=False,
                last_good=now,
            ),
            MeterHealth(
                meter="M2",
                line="l1",
                reads=10,
                failures=10,
                consecutive_failures=10,
                sidelined=True,
            ),
        ],
    )


def test_signed_health_is_stored_and_shown(rig: WebRig) -> None:
    key = rig.gateway_keys["gw-a"]
    rig.web.gateways.take_health(TOPIC, seal_health(health(key), key))
    rig.web.gateways.take_state("mf/v1/park-a/gw-a/state", b"online")
    (view,) = [g for g in rig.web.gateways.gateways(ENGINEER_A) if g.id == "gw-a"]
    assert (view.state, view.outbox_depth, view.oldest_age_s) == ("online", 9, 42.0)
    assert [(m.meter, m.state) for m in view.meters] == [("M1", "ok"), ("M2", "sidelined")]
    assert view.last_seen is not None
    rig.web.gateways.take_state("mf/v1/park-a/gw-a/state", b"offline")
    view, _ = rig.web.gateways.gateway(ENGINEER_A, "gw-a")
    assert view.state == "offline" and view.meters  # the last health stays on show
    with pytest.raises(UnknownGateway):
        rig.web.gateways.gateway(ENGINEER_B, "gw-a")


def test_the_gateway_page_says_which_reported_meters_the_site_does_not_own(rig: WebRig) -> None:
    key = rig.gateway_keys["gw-a"]
    rig.web.gateways.take_health(TOPIC, seal_health(health(key), key))  # reports M1 and M2
    with serve(rig.app) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.headers["Authorization"] = f"Bearer {rig.token(client, 'eng-a')}"
        before = client.get("/engineer/gateways/gw-a?lang=en")
        with rig.sessions.begin() as s:  # park-a's site file lists M1 only
            register_meter(s, "park-a", "M1", protocol="dlt645", address="000000000001")
        after = client.get("/engineer/gateways/gw-a?lang=en")
    assert before.status_code == after.status_code == 200
    # nothing registered yet: every reading is taken, and the page says so
    assert 'data-testid="ownership-unchecked"' in before.text
    assert 'data-testid="not-owned"' not in before.text
    # M2 is reported but not the site's: its readings are refused, and it is marked
    assert 'data-testid="ownership-unchecked"' not in after.text
    rows = {r.split('"')[0]: r for r in after.text.split('<tr data-meter="')[1:]}
    assert 'data-testid="not-owned"' in next(r for k, r in rows.items() if k.startswith("M2"))
    assert 'data-testid="not-owned"' not in next(r for k, r in rows.items() if k.startswith("M1"))


@pytest.mark.parametrize(
    "case", ["other_key", "forged", "unknown_key", "wrong_topic", "not_jws", "bad_state"]
)
def test_health_that_is_not_authentic_is_refused(rig: WebRig, case: str) -> None:
    key, other = rig.gateway_keys["gw-a"], rig.gateway_keys["gw-b"]
    service = rig.web.gateways
    before = service.gateway(ENGINEER_A, "gw-a")[0]
    with pytest.raises(HealthRejected):
        if case == "other_key":  # gw-b's key, claiming to be gw-a
            service.take_health(TOPIC, seal_health(health(other, "gw-a"), other))
        elif case == "forged":
            envelope = seal_health(health(key, pending=999), key)
            service.take_health(
                TOPIC, envelope[:-4] + (b"AAAA" if envelope[-4:] != b"AAAA" else b"BBBB")
            )
        elif case == "unknown_key":
            stranger = Ed25519PrivateKey.generate()
            service.take_health(TOPIC, seal_health(health(stranger), stranger))
        elif case == "wrong_topic":
            service.take_health("mf/v1/park-b/gw-a/up/health", seal_health(health(key), key))
        elif case == "not_jws":
            service.take_health(TOPIC, b"{}")
        else:
            service.take_state("mf/v1/park-a/gw-unknown/state", b"online")
    after = service.gateway(ENGINEER_A, "gw-a")[0]
    assert after.pending_readings == before.pending_readings != 999


def ack(key: Ed25519PrivateKey, cmd_id: str, status: str = "ok") -> bytes:
    payload = {
        "schema": "mf.ack/1",
        "cmd_id": cmd_id,
        "site": "park-a",
        "gateway": "gw-a",
        "status": status,
        "detail": "configuration reloaded",
        "result": {"lines": 1},
        "finished_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    return sign_compact(
        {"alg": "EdDSA", "kid": key_id(key.public_key())}, json.dumps(payload).encode(), key
    )


def test_push_config_is_a_signed_reload_command_and_its_answer_is_recorded(rig: WebRig) -> None:
    sent = rig.web.commands.send(ENGINEER_A, "gw-a", "reload_config")
    topic, envelope = rig.published[-1]
    assert topic == "mf/v1/park-a/gw-a/down/cmd"
    compact = parse_compact(envelope)
    rig.signer.public_key.verify(compact.signature, compact.signing_input)
    body = json.loads(compact.payload)
    assert (body["command"], body["cmd_id"], body["gateway"]) == (
        "reload_config",
        sent.cmd_id,
        "gw-a",
    )
    rig.web.commands.take_ack(ack(rig.gateway_keys["gw-a"], sent.cmd_id))
    _, commands = rig.web.gateways.gateway(ENGINEER_A, "gw-a")
    assert (commands[0].cmd_id, commands[0].status) == (sent.cmd_id, "ok")
    with pytest.raises(UnknownGatewayTarget):
        rig.web.commands.send(ENGINEER_B, "gw-a", "sync_time")
    with pytest.raises(DispatchError):
        rig.web.commands.send(ENGINEER_A, "gw-a", "reboot")


@pytest.mark.mosquitto
def test_feed_takes_health_state_and_answers_from_the_broker(rig: WebRig, mosquitto_server) -> None:  # type: ignore[no-untyped-def]
    feed = GatewayFeed(
        rig.web.gateways, mosquitto_server.url, client_id="web-feed-test", dispatch=rig.web.commands
    )
    feed.start()
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="web-feed-gw")
    publisher.connect(mosquitto_server.host, mosquitto_server.port)
    publisher.loop_start()
    try:
        assert feed.subscribed.is_set()
        key = rig.gateway_keys["gw-a"]
        state = "mf/v1/park-a/gw-a/state"
        publisher.publish(state, b"online", qos=1, retain=True).wait_for_publish(5)
        publisher.publish(TOPIC, seal_health(health(key, pending=5), key)).wait_for_publish(5)
        original = rig.web.commands.publish
        rig.web.commands.publish = feed.publish
        try:
            sent = rig.web.commands.send(ENGINEER_A, "gw-a", "sync_time")
        finally:
            rig.web.commands.publish = original
        publisher.publish(
            "mf/v1/park-a/gw-a/up/ack", ack(key, sent.cmd_id, "error"), qos=1
        ).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            view, commands = rig.web.gateways.gateway(ENGINEER_A, "gw-a")
            if (
                view.state == "online"
                and view.pending_readings == 5
                and commands[0].status == "error"
            ):
                break
            time.sleep(0.05)
        assert (view.state, view.pending_readings, commands[0].status) == ("online", 5, "error")
    finally:
        publisher.publish("mf/v1/park-a/gw-a/state", b"", qos=1, retain=True).wait_for_publish(5)
        publisher.loop_stop()
        publisher.disconnect()
        feed.stop()
