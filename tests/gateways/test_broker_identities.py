"""The real gateway publisher, ingest worker and gateway feed through the shipped ACL, each
with its own broker identity; and gateways' online/offline state, taken only where the
broker can vouch for it (decision 0016)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.feed import GatewayFeed, broker_admits_anonymous
from cloud.gateways.health import GatewayHealthService
from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.sqlite import SqliteSeriesStore
from cloud.staff.accounts import Principal, Role
from edge.keys import GatewayIdentity
from edge.outbox import SealedEnvelope
from edge.provision import ProvisionError, load_broker_url
from edge.publisher import MqttPublisher
from edge.wire import (
    ClockState,
    HealthPayload,
    OutboxHealth,
    Quality,
    Reading,
    ReadingsPayload,
    seal,
    seal_health,
)
from edge.wire.mqtt import BrokerAddress
from simulators.dlt645_meter import SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SystemClock
from tests.support.gateway_rig import METERS, CountingLine, Gateway
from tests.support.secured_broker import BrokerClient, SecuredMosquittoServer

pytestmark = pytest.mark.mosquitto
ADMIN = Principal("admin", Role.ADMIN, frozenset())


@dataclass
class Cloud:
    sessions: sessionmaker[Session]
    ingest: IngestService
    health: GatewayHealthService
    keys: dict[str, GatewayIdentity]


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    """A SQLite registry with gw-a1 and gw-a2 of site-a registered, and the services."""
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    keys = {g: GatewayIdentity(Ed25519PrivateKey.generate()) for g in ("gw-a1", "gw-a2")}
    with sessions.begin() as session:
        for gateway, identity in keys.items():
            register_gateway(session, "site-a", gateway, identity.public_key)
    store = SqliteSeriesStore(tmp_path / "series.sqlite")
    yield Cloud(sessions, IngestService(sessions, store), GatewayHealthService(sessions), keys)
    store.close()
    sessions.kw["bind"].dispose()


def wait_for(what: str, predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def readings_envelope(identity: GatewayIdentity, gateway: str, seq: int) -> bytes:
    now = datetime.now(UTC).replace(microsecond=0)
    reading = Reading(
        meter="M1",
        quantity="energy_import",
        value=Decimal(100 + seq),
        unit="kWh",
        read_at=now - timedelta(minutes=10 - seq),
        quality=Quality.GOOD,
        round=f"r{seq}",
    )
    payload = ReadingsPayload(
        gateway=gateway,
        kid=identity.kid,
        seq=seq,
        epoch=1,
        sent_at=now,
        clock=ClockState.SYNCED,
        readings=[reading],
    )
    return seal(payload, identity.private_key)


def health_envelope(identity: GatewayIdentity, gateway: str, pending: int) -> bytes:
    outbox = OutboxHealth(
        pending_readings=pending,
        unacked_envelopes=0,
        oldest_age_s=0,
        disk_bytes=0,
        max_bytes=1 << 20,
        evicted_readings=0,
        alarm=False,
    )
    payload = HealthPayload(
        gateway=gateway,
        kid=identity.kid,
        sent_at=datetime.now(UTC),
        epoch=1,
        clock=ClockState.SYNCED,
        uptime_s=1,
        rounds=1,
        overruns=0,
        outbox=outbox,
        lines=[],
        meters=[],
    )
    return seal_health(payload, identity.private_key)


def state_of(cloud: Cloud, gateway: str) -> tuple[str, int | None]:
    view, _ = cloud.health.gateway(ADMIN, gateway)
    return view.state, view.pending_readings


def test_whether_a_broker_admits_anonymous_clients(broker, mosquitto_server) -> None:  # type: ignore[no-untyped-def]
    assert broker_admits_anonymous(BrokerAddress.parse(broker.url)) is False
    assert broker_admits_anonymous(BrokerAddress.parse(mosquitto_server.url)) is True
    closed = BrokerAddress("127.0.0.1", 1)  # nobody listens on port 1
    assert broker_admits_anonymous(closed, timeout_s=1) is None


def test_gateway_ingest_and_feed_work_through_the_acl_with_their_own_identities(
    broker: SecuredMosquittoServer, cloud: Cloud, connect
) -> None:  # type: ignore[no-untyped-def]
    worker = IngestWorker(
        cloud.ingest, broker.url_as("mf-ingest"), client_id="acl-ingest", share_group="ingest"
    )
    feed = GatewayFeed(
        cloud.health, broker.url_as("mf-api"), client_id="acl-feed", state_trust="auto"
    )
    acked: list[int] = []
    gateway = MqttPublisher(
        broker.url_as("gw-a1"), site="site-a", gateway="gw-a1", on_acked=acked.append
    )
    worker.start()
    feed.start()
    gateway.start()
    try:
        assert feed.state_trusted is True  # the broker refused the anonymous probe
        wait_for("gw-a1 online (its birth)", lambda: state_of(cloud, "gw-a1")[0] == "online")
        key = cloud.keys["gw-a1"]
        for seq in range(3):
            gateway.publish(SealedEnvelope(seq, readings_envelope(key, "gw-a1", seq), 1))
        gateway.publish_health(health_envelope(key, "gw-a1", pending=4))
        wait_for("3 envelopes stored", lambda: cloud.ingest.stats.stored == 3)
        wait_for("health stored", lambda: state_of(cloud, "gw-a1") == ("online", 4))
        assert sorted(acked) == [0, 1, 2]

        # gw-a2 cannot say gw-a1 is offline; its own state goes through (and comes after)
        gw_a2 = connect("gw-a2")
        gw_a2.publish("mf/v1/site-a/gw-a1/state", b"offline")
        gw_a2.publish("mf/v1/site-a/gw-a2/state", b"offline")
        wait_for("gw-a2 offline", lambda: state_of(cloud, "gw-a2")[0] == "offline")
        assert state_of(cloud, "gw-a1")[0] == "online"

        # gw-a1's connection breaks: the broker publishes its will under its identity
        gateway._client.loop_stop()
        gateway._client.socket().close()
        wait_for("gw-a1 offline (its will)", lambda: state_of(cloud, "gw-a1")[0] == "offline")
        assert cloud.ingest.stats.rejected == 0
    finally:
        gateway._client.loop_stop()
        worker.stop()
        feed.stop()
        for name in ("gw-a1", "gw-a2"):
            connect(name).publish(f"mf/v1/site-a/{name}/state", b"", retain=True)


def test_state_is_ignored_on_a_broker_that_admits_anonymous_clients(
    mosquitto_server, cloud: Cloud
) -> None:  # type: ignore[no-untyped-def]
    feed = GatewayFeed(cloud.health, mosquitto_server.url, client_id="open-feed")
    assert feed.state_trusted is True  # the library's default: the caller vouches
    feed = GatewayFeed(
        cloud.health, mosquitto_server.url, client_id="open-feed", state_trust="auto"
    )
    feed.start()
    anybody = BrokerClient(mosquitto_server, None)
    try:
        assert feed.state_trusted is False
        assert [f for f, _ in feed.filters if f.endswith("/state")] == []
        key = cloud.keys["gw-a1"]
        anybody.publish("mf/v1/site-a/gw-a1/up/health", health_envelope(key, "gw-a1", 2))
        wait_for("signed health taken", lambda: state_of(cloud, "gw-a1") == ("online", 2))
        anybody.publish("mf/v1/site-a/gw-a1/state", b"offline")
        anybody.publish("mf/v1/site-a/gw-a1/up/health", health_envelope(key, "gw-a1", 3))
        wait_for("later health taken", lambda: state_of(cloud, "gw-a1")[1] == 3)
        assert state_of(cloud, "gw-a1")[0] == "online"
        assert cloud.health.stats.states == 0
    finally:
        anybody.close()
        feed.stop()


def test_edge_run_connects_with_the_broker_user_provisioning_stored(
    broker: SecuredMosquittoServer, tmp_path: Path
) -> None:
    """`meterflow edge run` without MF_MQTT_URL takes broker.json (as `edge provision` wrote
    it): its readings reach the ingest through the ACL under its own broker user."""
    broker.add_gateway("s1", "gw1")
    broker.reload()
    line = CountingLine(
        [
            SimulatedMeter(a, LoadModel(5.0, seed=i), clock=SystemClock())
            for i, a in enumerate(METERS)
        ]
    )
    sim_port, stop_sim = serve_in_thread(line)
    gateway = Gateway(tmp_path, broker.url, sim_port)
    del gateway.env["MF_MQTT_URL"]
    (tmp_path / "data" / "broker.json").write_text(
        json.dumps(
            {
                "mqtt_url": broker.url,
                "mqtt_username": "gw1",
                "mqtt_password": broker.passwords["gw1"],
                "topic_prefix": "mf/v1",
            }
        )
    )
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", gateway.identity.public_key)
    store = SqliteSeriesStore(tmp_path / "series.sqlite")
    service = IngestService(registry, store)
    worker = IngestWorker(service, broker.url_as("mf-ingest"), client_id="edge-run-ingest")
    worker.start()
    gateway.start()
    try:
        wait_for("2 envelopes from edge run", lambda: service.stats.stored >= 2, timeout_s=30)
        assert service.stats.rejected == 0
    finally:
        gateway.stop()
        worker.stop()
        stop_sim()
        store.close()
        registry.kw["bind"].dispose()
        broker.users("remove", "gw1")
        broker.reload()
    assert "Not authorized" not in gateway.log.read_text()


def test_broker_json_gives_the_url_with_the_gateways_user(tmp_path: Path) -> None:
    assert load_broker_url(tmp_path) is None
    stored = {"mqtt_url": "mqtts://broker.example", "mqtt_username": "gw-1", "topic_prefix": "x"}
    (tmp_path / "broker.json").write_text(json.dumps({**stored, "mqtt_password": "p@ss:/w"}))
    url = load_broker_url(tmp_path)
    assert url == "mqtts://gw-1:p%40ss%3A%2Fw@broker.example:8883"
    assert BrokerAddress.parse(url) == BrokerAddress(
        "broker.example", 8883, True, "gw-1", "p@ss:/w"
    )
    for bad in ("{", '{"mqtt_url": 5}', '{"mqtt_url": "http://x"}', "[]"):
        (tmp_path / "broker.json").write_text(bad)
        with pytest.raises(ProvisionError, match=r"broker\.json"):
            load_broker_url(tmp_path)
