"""The admin's gateway-trust commands end to end on a SQLite registry and real mosquitto:
``claim-token --replace``, ``replacement list/approve``, ``purge-claim-tokens``,
``rotate-command-key`` and ``command-keys``."""

from __future__ import annotations

import json
import queue
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from cloud.gateways.provisioning import BrokerGrant, CloudSigner, ProvisioningService
from cloud.registry.db import open_registry
from cloud.registry.service import find_key
from edge.wire import Command, Topics, key_id, parse_compact, public_key_b64
from meterflow.cli import app

SITE = 'site = "s1"\ngateway = "{gw}"\n'


def redeem(service: ProvisioningService, token: str) -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return service.redeem(token, public_key_b64(key), key_id(key)).kid


def test_replacement_and_claim_purge_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path))
    config = tmp_path / "gw1.toml"
    config.write_text(SITE.format(gw="gw1"))
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    service = ProvisioningService(sessions, CloudSigner.load_or_create(tmp_path / "cloud.key"))
    grant = BrokerGrant("mqtt://127.0.0.1:1883")
    old = redeem(service, service.create_claim("s1", "gw1", SITE.format(gw="gw1"), grant).token)
    runner = CliRunner()
    claim = ["cloud", "claim-token", "--site", "s1", "--gateway", "gw1", "--config", str(config)]

    plain = runner.invoke(app, claim)
    replacing = runner.invoke(app, [*claim, "--replace"])
    assert plain.exit_code == 2 and "provisioned already" in plain.stderr
    assert replacing.exit_code == 0, replacing.output
    new = redeem(service, replacing.stdout.strip())  # approved in advance: the CLI is admin

    with sessions() as session:
        assert find_key(session, old).revoked and not find_key(session, new).revoked  # type: ignore[union-attr]
    engineer_token = service.create_claim(
        "s1", "gw1", SITE.format(gw="gw1"), grant, replace=True, issued_by="eng-a"
    ).token
    newest = redeem(service, engineer_token)
    listed = runner.invoke(app, ["cloud", "replacement", "list"])
    (pending,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (pending["kid"], pending["requested_by"]) == (newest, "eng-a")

    approved = runner.invoke(app, ["cloud", "replacement", "approve", str(pending["id"])])
    twice = runner.invoke(app, ["cloud", "replacement", "reject", str(pending["id"])])

    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.stdout)["revoked"] == [new]
    assert twice.exit_code == 2 and "approved, not a pending replacement" in twice.stderr
    purged = runner.invoke(app, ["cloud", "purge-claim-tokens", "--older-than-h", "0"])
    assert purged.exit_code == 0 and "3 claim token(s) deleted" in purged.stderr


def test_register_gateway_adds_a_second_key_only_as_a_replacement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path))
    first, second = (public_key_b64(Ed25519PrivateKey.generate().public_key()) for _ in "12")
    register = ["cloud", "register-gateway", "--site", "s1", "--gateway", "gw1", "--public-key"]
    runner = CliRunner()

    registered = runner.invoke(app, [*register, first])
    again = runner.invoke(app, [*register, first])
    silent = runner.invoke(app, [*register, second])
    replaced = runner.invoke(app, [*register, second, "--replace"])

    assert registered.exit_code == 0 and again.exit_code == 0, "the same key again is a no-op"
    assert silent.exit_code == 2 and "add --replace" in silent.stderr
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(replaced.stdout)["revoked"] == [json.loads(registered.stdout)["kid"]]


def test_rotate_command_key_sends_the_new_key_signed_with_the_old(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mosquitto_server,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("MF_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MF_MQTT_URL", mosquitto_server.url)
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    base = CloudSigner.load_or_create(tmp_path / "cloud.key")
    service = ProvisioningService(sessions, base)
    redeem(
        service,
        service.create_claim(
            "s1", "gw1", SITE.format(gw="gw1"), BrokerGrant(mosquitto_server.url)
        ).token,
    )
    received: queue.Queue[bytes] = queue.Queue()
    subscribed: queue.Queue[None] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cli-rotation-gw1")
    client.on_message = lambda _c, _u, m: received.put(m.payload)
    client.on_subscribe = lambda *_: subscribed.put(None)
    client.connect("127.0.0.1", mosquitto_server.port)
    client.loop_start()
    client.subscribe(Topics().command("s1", "gw1"), qos=1)
    subscribed.get(timeout=10)
    runner = CliRunner()
    try:
        rotated = runner.invoke(app, ["cloud", "rotate-command-key", "--overlap-hours", "48"])
        again = runner.invoke(app, ["cloud", "rotate-command-key"])
        envelope = received.get(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()
    listed = runner.invoke(app, ["cloud", "command-keys"])

    assert rotated.exit_code == 0, rotated.output
    out = json.loads(rotated.stdout)
    assert out["old_kid"] == base.kid and list(out["sent"]) == ["gw1"]
    assert again.exit_code == 2 and "a rotation is under way" in again.stderr
    compact = parse_compact(envelope)
    command = Command.model_validate_json(compact.payload)
    assert compact.header["kid"] == base.kid, "signed with the key the gateway trusts now"
    assert command.command == "trust_cloud_key" and command.args["kid"] == out["new_kid"]
    assert str(command.cmd_id) == out["sent"]["gw1"]
    keys = json.loads(listed.stdout)["keys"]
    assert [(k["kid"], k["live"], k["retires_at"] is not None) for k in keys] == [
        (base.kid, True, True),
        (out["new_kid"], True, False),
    ]
    assert (tmp_path / f"command-{out['new_kid'][:16]}.key").stat().st_mode & 0o777 == 0o600
