"""The thin path end to end on real parts: simulated DL/T645 meters on TCP → gateway agent →
signed envelopes → real mosquitto → ingest → series store; and the demo command."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.sqlite import SqliteSeriesStore
from edge.agent import GatewayAgent
from edge.config import LineConfig, MeterConfig, SiteConfig
from edge.keys import GatewayIdentity
from edge.outbox import OutboxStore
from edge.publisher import MqttPublisher
from simulators.load import SimClock
from simulators.site import demo_line, demo_meter_tree, serve_in_thread

START = datetime(2026, 3, 1, tzinfo=UTC)


def wait_for(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"condition not met within {timeout_s} s"
        time.sleep(0.05)


def test_meter_register_reaches_the_store_exactly_as_the_meter_reported_it(
    tmp_path, mosquitto_server
):
    clock = SimClock(START)
    tree = demo_meter_tree(4)
    line = demo_line(tree, clock)
    port, stop_sim = serve_in_thread(line)
    identity = GatewayIdentity(Ed25519PrivateKey.generate())
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.begin() as session:
        register_gateway(session, "site-a", "gw-a", identity.public_key)
    store = SqliteSeriesStore(tmp_path / "series.sqlite")
    service = IngestService(registry, store, now=clock.now)
    worker = IngestWorker(service, mosquitto_server.url, client_id="thin-path-ingest")
    worker.start()
    config = SiteConfig(
        site="site-a",
        gateway="gw-a",
        lines=[
            LineConfig(
                name="l1",
                tcp=f"127.0.0.1:{port}",
                meters=[
                    MeterConfig(
                        id=m.id,
                        address=m.address,
                        parent=m.parent,
                        ct=Decimal(40) if m.role == "main" else Decimal(1),
                    )
                    for m in tree
                ],
            )
        ],
    )
    outbox = OutboxStore(tmp_path / "outbox.sqlite")
    publisher = MqttPublisher(
        mosquitto_server.url, site="site-a", gateway="gw-a", on_acked=outbox.acknowledge
    )
    publisher.start()
    assert publisher.connected.wait(10)
    agent = GatewayAgent(config, identity, outbox, publisher, now=clock.now)

    async def two_rounds() -> None:
        for _ in range(2):
            await agent.poll_round()
            agent.pump()
            clock.advance(3600)
        await agent.close()

    try:
        asyncio.run(two_rounds())
        wait_for(
            lambda: (
                agent.pump() >= 0 and service.stats.readings_stored == 8 and not outbox.unacked()
            )
        )
    finally:
        publisher.stop()
        worker.stop()
        stop_sim()

    assert (service.stats.stored, service.stats.rejected, service.stats.duplicates) == (2, 0, 0)
    for sim_meter, m in zip(line.meters, tree, strict=True):
        frame = store.read(m.id, "energy_import", START, START + timedelta(hours=3), site="site-a")
        multiplier = 40 if m.role == "main" else 1
        expected = [
            float(sim_meter.load.energy_import_kwh(START + timedelta(hours=h)) * multiplier)
            for h in (0, 1)
        ]
        assert frame.values.tolist() == expected, m.id
        assert frame.quality.tolist() == ["good", "good"]
