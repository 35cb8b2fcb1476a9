"""Rotating the cloud's command-signing key against a running gateway (`meterflow edge run`)
over real mosquitto: the new key reaches the gateway in a command signed with the old one, both
keys are accepted during the overlap (and across a restart), only the new one afterwards; a
gateway that never confirmed the new key is told apart. Decision 0018."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.gateways.command_keys import CommandKeyError, CommandKeyRing
from cloud.gateways.commands import issue_command, verify_ack
from cloud.gateways.dispatch import CommandDispatch, CommandNotAllowed, DispatchError
from cloud.gateways.models import GatewayCommandTrust
from cloud.gateways.provisioning import CloudSigner
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.staff.accounts import Principal, Role
from edge.wire import Ack, Topics, parse_compact
from tests.support.gateway_rig import wait_for

ADMIN = Principal("root", Role.ADMIN, frozenset())
ENGINEER = Principal("eng", Role.ENGINEER, frozenset({"s1"}))
OVERLAP_S = 30


def test_cloud_key_rotates_with_an_overlap_on_a_running_gateway(
    rig,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    mosquitto_server,  # type: ignore[no-untyped-def]
) -> None:
    _line, gateway, service, _ = rig
    cloud_dir = tmp_path / "cloud"
    base = CloudSigner.load_or_create(cloud_dir / "cloud.key")
    (tmp_path / "data" / "cloud.pub").write_bytes(
        base.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with service.registry.begin() as session:  # a gateway that stays offline throughout
        register_gateway(session, "s1", "gw-away", Ed25519PrivateKey.generate().public_key())
    ring = CommandKeyRing(service.registry, base, cloud_dir)
    acks: list[bytes] = []
    sent_kids: dict[str, str] = {}  # cmd topic/id → kid that signed it
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cloud-rotation")
    client.on_message = lambda _c, _u, m: acks.append(m.payload)
    client.connect("127.0.0.1", mosquitto_server.port)
    client.subscribe(Topics().ack("s1", "gw1"), qos=1)
    client.loop_start()

    def publish(topic: str, envelope: bytes) -> None:
        sent_kids[f"{topic}#{len(sent_kids)}"] = str(parse_compact(envelope).header["kid"])
        client.publish(topic, envelope, qos=1).wait_for_publish(5)

    dispatch = CommandDispatch(service.registry, ring, publish)

    def answer(cmd_id: str, timeout_s: float = 20) -> Ack | None:
        """The gateway's verified answer to ``cmd_id``, recorded by the dispatch (None: none)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for body in list(acks):
                with service.registry() as session:
                    ack = verify_ack(session, body)
                if ack.cmd_id == cmd_id:
                    acks.remove(body)
                    return dispatch.take_ack(body)
            time.sleep(0.1)
        return None

    def via_dispatch(command: str = "sync_time") -> tuple[str, Ack | None]:
        sent = dispatch.send(ADMIN, "gw1", command, {})
        return list(sent_kids.values())[-1], answer(sent.cmd_id)

    def raw(signer: CloudSigner, timeout_s: float = 20) -> Ack | None:
        signed = issue_command(signer, "s1", "gw1", "sync_time", {}, ttl_s=60)
        publish(Topics().command("s1", "gw1"), signed.envelope)
        return answer(signed.cmd_id, timeout_s)

    gateway.start()
    try:
        wait_for(lambda: service.stats.stored >= 1, 30, "gateway running")
        kid, ack = via_dispatch()
        assert kid == base.kid and ack is not None and ack.status == "ok", ack

        rotation = ring.rotate(timedelta(seconds=OVERLAP_S))
        sent = dispatch.send_new_key(rotation)
        trust_kid = list(sent_kids.values())[-1]  # gateways in id order: gw-away, then gw1
        confirmed = answer(sent["gw1"])

        assert sorted(sent) == ["gw-away", "gw1"] and trust_kid == base.kid
        assert confirmed is not None and confirmed.status == "ok", confirmed
        assert confirmed.result is not None
        assert sorted(confirmed.result["trusted"]) == sorted([base.kid, rotation.new.kid])  # type: ignore[arg-type]
        with service.registry() as session:
            assert set(
                session.scalars(
                    select(GatewayCommandTrust.kid).where(GatewayCommandTrust.gateway_id == "gw1")
                )
            ) == {rotation.new.kid}
        kid, ack = via_dispatch()
        assert kid == rotation.new.kid and ack is not None and ack.status == "ok"
        during = raw(base)
        assert during is not None and during.status == "ok", "the old key works in the overlap"
        with pytest.raises(CommandNotAllowed):
            dispatch.send(ADMIN, "gw1", "trust_cloud_key", {"kid": "x"})

        gateway.stop()
        gateway.start()
        kid, ack = via_dispatch()
        assert kid == rotation.new.kid and ack is not None and ack.status == "ok", (
            "the new key is trusted after a restart"
        )
        dispatch.send(ADMIN, "gw-away", "sync_time", {})
        assert list(sent_kids.values())[-1] == base.kid, "gw-away never confirmed the new key"

        wait = (rotation.retires_at - datetime.now(UTC)).total_seconds() + 0.5
        assert wait > 0, "the steps above outlasted the overlap; raise OVERLAP_S"
        time.sleep(wait)
        after = raw(base, timeout_s=5)
        kid, ack = via_dispatch()

        assert after is None, "a command signed with the retired key is dropped unanswered"
        assert f"signed with cloud key {base.kid!r}, retired at" in gateway.log.read_text()
        assert kid == rotation.new.kid and ack is not None and ack.status == "ok"
        with pytest.raises(DispatchError, match="'gw-away' trusts none of the live command keys"):
            dispatch.send(ADMIN, "gw-away", "sync_time", {})
    finally:
        client.loop_stop()
        client.disconnect()


def test_rotation_rules_and_retirement_of_the_private_files(tmp_path: Path) -> None:
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    base = CloudSigner.load_or_create(tmp_path / "cloud.key")
    now = [datetime.now(UTC)]
    ring = CommandKeyRing(sessions, base, tmp_path, clock=lambda: now[0])
    with sessions.begin() as session:
        register_gateway(session, "s1", "gw1", Ed25519PrivateKey.generate().public_key())

    first = ring.rotate(timedelta(days=7))
    with pytest.raises(CommandKeyError, match="a rotation is under way"):
        ring.rotate(timedelta(days=7))
    now[0] += timedelta(days=8)
    with pytest.raises(CommandKeyError, match="at most 90 days"):
        ring.rotate(timedelta(days=91))
    second = ring.rotate(timedelta(hours=1))
    now[0] += timedelta(hours=2)

    retired = ring.retire_expired()

    assert retired == [first.new.kid], "cloud.key is never deleted: it signs statements"
    assert (tmp_path / "cloud.key").exists()
    assert sorted(p.name for p in tmp_path.glob("command-*.key")) == [
        f"command-{second.new.kid[:16]}.key"
    ]
    assert (tmp_path / f"command-{second.new.kid[:16]}.key").stat().st_mode & 0o777 == 0o600
    with sessions() as session:
        assert ring.current(session).kid == second.new.kid
        with pytest.raises(CommandKeyError, match="trusts none of the live command keys"):
            ring.signer_for(session, "gw1")  # provisioned with cloud.key, missed both rotations
    dispatch = CommandDispatch(sessions, ring, lambda *_: None)
    with pytest.raises(CommandNotAllowed):
        dispatch.send(ENGINEER, "gw1", "trust_cloud_key", {})


def test_gateway_refuses_a_bad_key_announcement_and_keeps_a_good_one_across_reopening(
    tmp_path: Path,
) -> None:
    import asyncio

    from edge.commands import CloudKeyStore, CommandLog, CommandReceiver
    from edge.keys import GatewayIdentity
    from edge.wire import AckStatus

    base = CloudSigner.load_or_create(tmp_path / "cloud.key")
    data = tmp_path / "data"
    data.mkdir()
    (data / "cloud.pub").write_bytes(
        base.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    receiver = CommandReceiver(
        site="s1",
        gateway="gw1",
        identity=GatewayIdentity.create(data / "gateway.key"),
        cloud_keys=CloudKeyStore.open(data),
        publish=lambda *_: None,
        command_log=CommandLog(data / "commands.sqlite"),
    )
    new = CloudSigner(Ed25519PrivateKey.generate())
    soon = datetime.now(UTC) + timedelta(days=1)

    def announce(**args: object) -> Ack:
        full = {"kid": new.kid, "public_key": new.public_key_b64, "retire_old_at": soon}
        full.update(args)
        body = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in full.items()}
        signed = issue_command(base, "s1", "gw1", "trust_cloud_key", body)  # type: ignore[arg-type]
        answer = asyncio.run(receiver.handle(signed.envelope))
        assert isinstance(answer, Ack)
        return answer

    wrong_kid = announce(kid=base.kid)
    too_late = announce(retire_old_at=datetime.now(UTC) + timedelta(days=91))
    naive = announce(retire_old_at=soon.replace(tzinfo=None))
    assert not (data / "cloud-keys.json").exists()
    good = announce()

    assert [a.status for a in (wrong_kid, too_late, naive)] == [AckStatus.ERROR] * 3
    assert "is not the key's thumbprint" in wrong_kid.detail
    assert "at most 90 days later" in too_late.detail and "zoned instant" in naive.detail
    assert good.status is AckStatus.OK
    reopened = CloudKeyStore.open(data)
    assert reopened.kids == sorted([base.kid, new.kid])
    assert reopened.get(base.kid).not_after == soon  # type: ignore[union-attr]
    assert reopened.get(new.kid).not_after is None  # type: ignore[union-attr]
