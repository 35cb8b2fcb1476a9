"""Fault tests of the whole edge → cloud path on real mosquitto and simulated meters: the
gateway runs as its own process (`meterflow edge run`), ingest verifies and stores. Each
test counts what the meters answered, what the gateway sealed and what the cloud stored."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from cloud.ingest.models import IngestStream
from cloud.ingest.service import IngestService
from tests.support.gateway_rig import METERS, CountingLine, Gateway, wait_for
from tests.support.tcp_proxy import TcpProxy


def account(
    line: CountingLine, gateway: Gateway, service: IngestService, max_unsealed: int = 0
) -> dict[str, int]:
    """Compare meters' answers, the gateway's sealed envelopes and the cloud's store."""
    outbox = gateway.outbox()
    assert outbox["pending"] == 0 and outbox["unacked"] == 0, outbox
    assert outbox["evicted_readings"] == 0
    wait_for(lambda: service.stats.stored >= outbox["next_seq"], 30, "ingest caught up")
    with service.registry() as s:
        ledger = s.execute(select(IngestStream.floor, IngestStream.ranges)).all()
    # Every envelope the gateway sealed arrived, exactly once (the duplicate filter holds
    # every seq below next_seq and nothing else; stats counted each stored envelope once).
    assert ledger == [(outbox["next_seq"], "[]")]
    assert service.stats.stored == outbox["next_seq"]
    stored = {}
    for i, address in enumerate(METERS):
        frame = service.store.read(
            f"M{i}", "energy_import", _T0, _T0 + timedelta(days=36500), site="s1"
        )
        assert len(set(frame.times_ns.tolist())) == len(frame)
        assert set(frame.quality.tolist()) == {"good"}
        stored[address] = len(frame)
    # No reading lost: every reading in an envelope is a stored point, and every read the
    # meters answered is stored (but those the gateway had not committed when killed).
    assert service.stats.readings_stored == sum(stored.values())
    for address in METERS:
        assert line.answered[address] - max_unsealed <= stored[address] <= line.answered[address], (
            address,
            line.answered,
            stored,
        )
    return {"envelopes": outbox["next_seq"], "readings": sum(stored.values())}


from datetime import UTC, datetime  # noqa: E402

_T0 = datetime(2000, 1, 1, tzinfo=UTC)


def test_broker_stopped_for_a_while_then_restarted(rig, mosquitto_server):
    line, gateway, service, _ = rig
    gateway.start()
    wait_for(lambda: service.stats.stored >= 3, 30, "first envelopes stored")
    with mosquitto_server.stopped():
        time.sleep(4)  # the gateway keeps polling into its outbox
        assert gateway.outbox()["unacked"] + gateway.outbox()["pending"] > 0
    wait_for(lambda: gateway.outbox()["unacked"] == 0, 60, "backlog drained")
    time.sleep(1.5)
    gateway.stop()
    totals = account(line, gateway, service)
    assert totals["envelopes"] >= 8


def test_gateway_killed_mid_publish_and_restarted(rig):
    line, gateway, service, _ = rig
    gateway.start()
    wait_for(lambda: service.stats.stored >= 3, 30, "first envelopes stored")
    gateway.kill()
    kills_outbox = gateway.outbox()
    gateway.start()
    wait_for(
        lambda: gateway.outbox()["next_seq"] >= kills_outbox["next_seq"] + 3,
        30,
        "the restarted gateway sealing",
    )
    gateway.stop()
    assert gateway.outbox()["epoch"] == 2
    account(line, gateway, service, max_unsealed=1)


def test_network_to_the_broker_dropped_mid_batch(rig, mosquitto_server):
    line, gateway, service, _ = rig
    proxy = TcpProxy("127.0.0.1", mosquitto_server.port)
    proxy.start()
    gateway.env["MF_MQTT_URL"] = f"mqtt://127.0.0.1:{proxy.port}"
    try:
        gateway.start()
        wait_for(lambda: service.stats.stored >= 3, 30, "first envelopes stored")
        for _ in range(3):
            proxy.cut(2.0)  # drops whatever is in flight, refuses reconnects for 2 s
            time.sleep(3.0)
        wait_for(lambda: gateway.outbox()["unacked"] == 0, 60, "backlog drained")
        time.sleep(1.5)
        gateway.stop()
    finally:
        proxy.stop()
    account(line, gateway, service)
