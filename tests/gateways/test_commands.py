"""Cloud-signed commands and the gateway's signed answers: the cloud's envelopes verify on the
gateway, over real mosquitto; forged, misaddressed, expired and replayed commands never run."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import queue
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.commands import (
    AckRejected,
    CommandError,
    issue_command,
    verify_ack,
)
from cloud.gateways.provisioning import CloudSigner
from cloud.gateways.revocation import revoke_keys
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from edge.commands import CommandLog, CommandReceiver, Dropped, Publish
from edge.keys import GatewayIdentity
from edge.wire import Ack, AckStatus, Command, Topics, sign_compact
from edge.wire.mqtt import BrokerAddress

_client_ids = itertools.count()


def flip_signature_byte(envelope: bytes) -> bytes:
    head, payload, signature = envelope.split(b".")
    flipped = signature[:10] + (b"A" if signature[10:11] != b"A" else b"B") + signature[11:]
    return b".".join((head, payload, flipped))


@dataclass
class Gateway:
    """One gateway's side: identity, receiver, and what its handler was asked to do."""

    identity: GatewayIdentity
    receiver: CommandReceiver
    published: list[tuple[str, bytes]]
    executed: list[Command] = field(default_factory=list)

    async def read_meter(self, command: Command) -> dict[str, str]:
        """The test's ``read_meter`` handler: records the command, answers a fixed value."""
        self.executed.append(command)
        return {"meter": str(command.args["meter"]), "energy_import": "1234.56", "unit": "kWh"}


@pytest.fixture()
def signer(tmp_path: Path) -> CloudSigner:
    return CloudSigner.load_or_create(tmp_path / "cloud.key")


@pytest.fixture()
def registry(tmp_path: Path) -> sessionmaker[Session]:
    return open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")


def make_gateway(
    tmp_path: Path,
    signer: CloudSigner,
    registry: sessionmaker[Session],
    gateway: str = "gw1",
    forward: Publish | None = None,
    handler_timeout_s: float = 60.0,
) -> Gateway:
    """A registered gateway whose receiver runs a ``read_meter`` handler; its answers are
    collected, and passed on to ``forward`` (e.g. an MQTT client) too."""
    identity = GatewayIdentity.create(tmp_path / f"{gateway}.key")
    with registry.begin() as session:
        register_gateway(session, "s1", gateway, identity.public_key)
    published: list[tuple[str, bytes]] = []

    def publish(topic: str, body: bytes) -> None:
        published.append((topic, body))
        if forward is not None:
            forward(topic, body)

    receiver = CommandReceiver(
        site="s1",
        gateway=gateway,
        identity=identity,
        cloud_key=signer.public_key,
        publish=publish,
        command_log=CommandLog(tmp_path / f"{gateway}-commands.sqlite"),
        handler_timeout_s=handler_timeout_s,
    )
    gw = Gateway(identity, receiver, published)
    receiver.register("read_meter", gw.read_meter)
    return gw


@pytest.fixture()
def gw(tmp_path: Path, signer: CloudSigner, registry: sessionmaker[Session]) -> Gateway:
    return make_gateway(tmp_path, signer, registry)


def handle(gw: Gateway, envelope: bytes) -> Ack | Dropped:
    return asyncio.run(gw.receiver.handle(envelope))


# ----------------------------------------------------------------------------- over mosquitto


class MqttLink:
    """A paho client subscribed to some topics, collecting what arrives."""

    def __init__(self, broker_url: str, topics: list[str]) -> None:
        broker = BrokerAddress.parse(broker_url)
        self.messages: queue.Queue[bytes] = queue.Queue()
        subscribed = queue.Queue[None]()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-cmd-{next(_client_ids)}"
        )
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg.payload)
        self.client.on_subscribe = lambda *_: subscribed.put(None)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe([(topic, 1) for topic in topics])
        subscribed.get(timeout=10)

    def publish(self, topic: str, body: bytes) -> None:
        info = self.client.publish(topic, body, qos=1)
        info.wait_for_publish(10)
        assert info.is_published(), f"no PUBACK for {topic} within 10 s"

    def next_message(self) -> bytes:
        return self.messages.get(timeout=10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Link:
    cloud: MqttLink
    gateway: MqttLink
    gw: Gateway
    registry: sessionmaker[Session]

    def round_trip(self, envelope: bytes) -> Ack | Dropped:
        """The cloud publishes ``envelope``; the gateway receives and handles it."""
        self.cloud.publish(self.gw.receiver.command_topic, envelope)
        return asyncio.run(self.gw.receiver.handle(self.gateway.next_message()))

    def cloud_reads_ack(self) -> Ack:
        with self.registry() as session:
            return verify_ack(session, self.cloud.next_message())


@pytest.fixture()
def link(
    mosquitto_server,
    tmp_path: Path,
    signer: CloudSigner,  # type: ignore[no-untyped-def]
    registry: sessionmaker[Session],
) -> Iterator[Link]:
    cloud = MqttLink(mosquitto_server.url, [Topics().ack("s1", "gw1")])
    gateway = MqttLink(mosquitto_server.url, [Topics().command("s1", "gw1")])
    gw = make_gateway(tmp_path, signer, registry, forward=gateway.publish)
    try:
        yield Link(cloud, gateway, gw, registry)
    finally:
        cloud.close()
        gateway.close()


def test_cloud_command_runs_on_the_gateway_and_the_cloud_verifies_the_answer(
    link: Link, signer: CloudSigner
) -> None:
    command = issue_command(signer, "s1", "gw1", "read_meter", {"meter": "M1"}, ttl_s=60)

    answer = link.round_trip(command.envelope)
    ack = link.cloud_reads_ack()

    assert isinstance(answer, Ack) and answer.status is AckStatus.OK
    assert [c.args for c in link.gw.executed] == [{"meter": "M1"}]
    assert (ack.cmd_id, ack.status, ack.site, ack.gateway) == (command.cmd_id, "ok", "s1", "gw1")
    assert ack.result == {"meter": "M1", "energy_import": "1234.56", "unit": "kWh"}


def test_forged_command_is_dropped_unrun_and_unanswered(link: Link, signer: CloudSigner) -> None:
    forged = flip_signature_byte(
        issue_command(signer, "s1", "gw1", "read_meter", {"meter": "M1"}).envelope
    )
    genuine = issue_command(signer, "s1", "gw1", "read_meter", {"meter": "M2"})

    dropped = link.round_trip(forged)
    link.round_trip(genuine.envelope)

    assert dropped == Dropped(f"signature does not verify with the cloud key {signer.kid!r}")
    assert [c.args for c in link.gw.executed] == [{"meter": "M2"}]
    # answers arrive in order on one topic: the first one is the genuine command's
    assert link.cloud_reads_ack().cmd_id == genuine.cmd_id


def test_command_for_another_gateway_is_refused_and_answered(
    link: Link, signer: CloudSigner
) -> None:
    misrouted = issue_command(signer, "s1", "gw2", "read_meter", {"meter": "M1"})

    answer = link.round_trip(misrouted.envelope)
    ack = link.cloud_reads_ack()

    assert link.gw.executed == []
    assert isinstance(answer, Ack) and ack.status == "refused" and ack.cmd_id == misrouted.cmd_id
    assert ack.detail == (
        "addressed to gateway 'gw2' at site 's1'; this is gateway 'gw1' at site 's1'"
    )


def test_expired_command_is_refused_and_answered(link: Link, signer: CloudSigner) -> None:
    issued = datetime.now(UTC) - timedelta(minutes=10)
    late = issue_command(
        signer, "s1", "gw1", "read_meter", {"meter": "M1"}, ttl_s=300, now=lambda: issued
    )

    link.round_trip(late.envelope)
    ack = link.cloud_reads_ack()

    assert link.gw.executed == []
    assert ack.status == "refused" and ack.detail.startswith(
        f"expired at {(issued + timedelta(seconds=300)).isoformat()}; the gateway's clock says"
    )


def test_replayed_command_is_refused_and_runs_only_once(link: Link, signer: CloudSigner) -> None:
    command = issue_command(signer, "s1", "gw1", "read_meter", {"meter": "M1"})

    link.round_trip(command.envelope)
    link.round_trip(command.envelope)
    first, second = link.cloud_reads_ack(), link.cloud_reads_ack()

    assert len(link.gw.executed) == 1
    assert (first.status, second.status) == ("ok", "refused")
    assert second.cmd_id == command.cmd_id
    assert "was received already at" in second.detail and "runs at most once" in second.detail


# ----------------------------------------------------------------------------- receiver alone


def test_replay_is_remembered_across_a_restart(
    tmp_path: Path, signer: CloudSigner, gw: Gateway
) -> None:
    command = issue_command(signer, "s1", "gw1", "read_meter", {"meter": "M1"})
    handle(gw, command.envelope)
    restarted = CommandReceiver(
        site="s1",
        gateway="gw1",
        identity=gw.identity,
        cloud_key=signer.public_key,
        publish=lambda *_: None,
        command_log=CommandLog(tmp_path / "gw1-commands.sqlite"),
    )
    restarted.register("read_meter", gw.read_meter)

    answer = asyncio.run(restarted.handle(command.envelope))

    assert isinstance(answer, Ack) and answer.status is AckStatus.REFUSED
    assert len(gw.executed) == 1


def test_command_signed_by_another_key_is_dropped(gw: Gateway, tmp_path: Path) -> None:
    impostor = CloudSigner.load_or_create(tmp_path / "impostor.key")
    command = issue_command(impostor, "s1", "gw1", "read_meter", {"meter": "M1"})

    dropped = handle(gw, command.envelope)

    assert isinstance(dropped, Dropped) and dropped.reason.startswith(
        f"signed with key {impostor.kid!r}; this gateway trusts only the cloud key"
    )
    assert gw.executed == [] and gw.published == []


def test_garbage_on_the_command_topic_is_dropped(gw: Gateway) -> None:
    dropped = handle(gw, b"reboot now")

    assert isinstance(dropped, Dropped)
    assert dropped.reason.startswith("not a command envelope: not a JWS compact envelope")


def test_authentic_command_this_gateway_does_not_know_is_refused_with_the_schema_reason(
    gw: Gateway, signer: CloudSigner
) -> None:
    now = datetime.now(UTC)
    payload = {
        "schema": "mf.command/1",
        "cmd_id": "8f0e5c1e-0000-4000-8000-000000000001",
        "site": "s1",
        "gateway": "gw1",
        "command": "reboot",
        "args": {},
        "issued_at": now.isoformat(),
        "expires_at": (now + timedelta(minutes=5)).isoformat(),
    }

    answer = handle(gw, signer.sign(json.dumps(payload).encode()))

    assert isinstance(answer, Ack) and answer.status is AckStatus.REFUSED
    assert answer.cmd_id == payload["cmd_id"]
    assert answer.detail.startswith("payload breaks schema mf.command/1: command: Input should be")


def test_command_without_a_handler_here_is_refused(gw: Gateway, signer: CloudSigner) -> None:
    answer = handle(gw, issue_command(signer, "s1", "gw1", "sync_time", {}).envelope)

    assert isinstance(answer, Ack) and answer.status is AckStatus.REFUSED
    assert answer.detail == "command 'sync_time' has no handler on this gateway"


def test_failing_and_slow_handlers_are_answered_as_errors(
    tmp_path: Path, signer: CloudSigner, registry: sessionmaker[Session]
) -> None:
    gw = make_gateway(tmp_path, signer, registry, handler_timeout_s=0.05)

    async def reload_config(_command: Command) -> None:
        raise RuntimeError("site.toml: lines.0.tcp: bad address")

    async def sync_time(_command: Command) -> None:
        await asyncio.sleep(5)

    gw.receiver.register("reload_config", reload_config)
    gw.receiver.register("sync_time", sync_time)

    failed = handle(gw, issue_command(signer, "s1", "gw1", "reload_config").envelope)
    slow = handle(gw, issue_command(signer, "s1", "gw1", "sync_time").envelope)

    assert isinstance(failed, Ack) and failed.status is AckStatus.ERROR
    assert failed.detail == "RuntimeError: site.toml: lines.0.tcp: bad address"
    assert isinstance(slow, Ack) and slow.status is AckStatus.ERROR
    assert slow.detail == "did not finish within 0.05 s"


def test_command_living_longer_than_a_day_is_refused(gw: Gateway, signer: CloudSigner) -> None:
    now = datetime.now(UTC)
    payload = {
        "schema": "mf.command/1",
        "cmd_id": "8f0e5c1e-0000-4000-8000-000000000002",
        "site": "s1",
        "gateway": "gw1",
        "command": "read_meter",
        "args": {"meter": "M1"},
        "issued_at": now.isoformat(),
        "expires_at": (now + timedelta(days=2)).isoformat(),
    }

    answer = handle(gw, signer.sign(json.dumps(payload).encode()))

    assert isinstance(answer, Ack) and answer.status is AckStatus.REFUSED
    assert answer.detail == "lives 172800 s (issued_at → expires_at); at most 86400 s are accepted"
    assert gw.executed == []


def test_cloud_refuses_to_issue_unknown_or_overlong_commands(signer: CloudSigner) -> None:
    with pytest.raises(CommandError, match="unknown command 'reboot'"):
        issue_command(signer, "s1", "gw1", "reboot")
    with pytest.raises(CommandError, match="ttl_s 172800"):
        issue_command(signer, "s1", "gw1", "read_meter", ttl_s=172800)


def test_command_log_forgets_ids_a_day_after_their_expiry(
    tmp_path: Path, signer: CloudSigner
) -> None:
    log = CommandLog(tmp_path / "commands.sqlite")
    now = datetime.now(UTC)

    def command(issued: datetime) -> Command:
        return Command(
            cmd_id=uuid.uuid4(),
            site="s1",
            gateway="gw1",
            command="read_meter",
            issued_at=issued,
            expires_at=issued + timedelta(minutes=5),
        )

    for minute in range(3):
        assert log.admit(command(now + timedelta(minutes=minute)), now) is None
    assert log.admit(command(now + timedelta(days=2)), now + timedelta(days=2)) is None

    assert len(log) == 1


# ----------------------------------------------------------------------------- cloud reads answers


def test_cloud_rejects_forged_misattributed_and_revoked_answers(
    tmp_path: Path, signer: CloudSigner, registry: sessionmaker[Session], gw: Gateway
) -> None:
    other = make_gateway(tmp_path, signer, registry, gateway="gw2")
    handle(gw, issue_command(signer, "s1", "gw1", "read_meter", {"meter": "M1"}).envelope)
    genuine = gw.published[-1][1]
    _, payload_b64, _ = genuine.split(b".")
    payload = base64.urlsafe_b64decode(payload_b64 + b"=" * (-len(payload_b64) % 4))
    posing = sign_compact(
        {"alg": "EdDSA", "kid": other.identity.kid}, payload, other.identity.private_key
    )
    stranger = GatewayIdentity.create(tmp_path / "stranger.key")
    unknown = sign_compact({"alg": "EdDSA", "kid": stranger.kid}, payload, stranger.private_key)

    with registry() as session:
        assert verify_ack(session, genuine).status == "ok"
        with pytest.raises(AckRejected, match="signature does not verify"):
            verify_ack(session, flip_signature_byte(genuine))
        with pytest.raises(AckRejected, match=r"answer names gateway 'gw1' .* is gateway 'gw2'"):
            verify_ack(session, posing)
        with pytest.raises(AckRejected, match="is not registered"):
            verify_ack(session, unknown)
    with registry.begin() as session:
        revoke_keys(session, "gw1", datetime.now(UTC), reason="lost", actor="t", origin="t")
    with registry() as session, pytest.raises(AckRejected, match="is revoked"):
        verify_ack(session, genuine)
