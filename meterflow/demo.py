"""The demo: the whole thin path on embedded defaults, in one process, in a few seconds.

Simulated DL/T645-2007 meters on a TCP line → gateway agent (reads, outbox, signs) →
in-process MQTT broker → cloud ingest (verifies, dedupes) → SQLite series store. Meter time
runs on a simulated clock, so a day of 15-minute rounds takes seconds.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway, register_meter
from cloud.series.sqlite import SqliteSeriesStore
from edge.agent import GatewayAgent
from edge.config import GroupConfig, LineConfig, MeterConfig, SiteConfig
from edge.keys import GatewayIdentity
from edge.outbox import OutboxStore
from edge.publisher import MqttPublisher
from meterflow.broker import EmbeddedBroker
from simulators.load import SimClock
from simulators.site import demo_line, demo_meter_tree, serve_in_thread

SITE = "demo-park"
GATEWAY = "gw-01"
START = datetime(2026, 11, 1, tzinfo=UTC)


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def run_demo(
    *, meters: int, rounds: int, interval_min: int, data_dir: Path, echo: Callable[[str], None]
) -> dict[str, int]:
    """Run the demo and return ``{"meters", "readings_stored", "rejected"}``."""
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    clock = SimClock(START)

    broker = EmbeddedBroker()
    broker.start()
    echo(f"broker   embedded MQTT broker on {broker.url}")

    tree = demo_meter_tree(meters)
    line = demo_line(tree, clock)
    sim_port, stop_sim = serve_in_thread(line)
    echo(f"meters   {meters} simulated DL/T645-2007 meters on tcp://127.0.0.1:{sim_port}")

    identity = GatewayIdentity.create(data_dir / "gateway.key")
    registry = open_registry(f"sqlite:///{data_dir / 'registry.sqlite'}")
    with registry.begin() as session:
        kid = register_gateway(session, SITE, GATEWAY, identity.public_key)
        for m in tree:
            register_meter(
                session,
                SITE,
                m.id,
                protocol="dlt645",
                address=m.address,
                gateway_id=GATEWAY,
                parent_id=m.parent,
            )
    echo(f"registry gateway {GATEWAY} registered with key {kid}")

    store = SqliteSeriesStore(data_dir / "series.sqlite")
    service = IngestService(registry, store)
    worker = IngestWorker(service, broker.url, client_id="demo-ingest")
    worker.start()
    echo("ingest   subscribed to mf/v1/+/+/up/readings")

    config = SiteConfig(
        site=SITE,
        gateway=GATEWAY,
        metrics_port=0,
        groups=[
            GroupConfig(name="billing", interval_s=interval_min * 60, quantities=["energy_import"])
        ],
        lines=[
            LineConfig(
                name="rs485-1",
                tcp=f"127.0.0.1:{sim_port}",
                timeout_s=1.0,
                meters=[
                    MeterConfig(id=m.id, address=m.address, parent=m.parent, role=m.role)
                    for m in tree
                ],
            )
        ],
    )
    outbox = OutboxStore(data_dir / "outbox.sqlite")
    publisher = MqttPublisher(broker.url, site=SITE, gateway=GATEWAY, on_acked=outbox.acknowledge)
    publisher.start()
    if not publisher.connected.wait(10):
        raise RuntimeError(f"the gateway could not connect to {broker.url}")
    agent = GatewayAgent(config, identity, outbox, publisher, now=clock.now)

    async def poll() -> int:
        produced = 0
        for n in range(1, rounds + 1):
            report = await agent.poll_round()
            sent = agent.pump()
            produced += report.good + report.failed
            echo(
                f"round    {n}/{rounds} {clock.now():%Y-%m-%d %H:%M}Z: {report.good} read, "
                f"{report.failed} failed, {sent} envelope(s) signed and published"
            )
            clock.advance(interval_min * 60)
        await agent.close()
        return produced

    try:
        produced = asyncio.run(poll())

        def all_stored() -> bool:
            agent.pump()
            return (
                outbox.depth().unacked_envelopes == 0 and service.stats.readings_stored >= produced
            )

        delivered = _wait(all_stored, timeout_s=30)
        stats = service.stats
        echo(
            f"ingest   {stats.stored} envelopes stored ({stats.readings_stored} readings), "
            f"{stats.duplicates} duplicates, {stats.rejected} rejected"
            + ("" if delivered else " — timed out waiting for the rest")
        )
        first = tree[0]
        series = store.read(
            first.id, "energy_import", START, START + timedelta(minutes=interval_min * rounds + 1)
        )
        if len(series):
            echo(
                f"series   {first.id} energy_import: {series.values[0]:.2f} → "
                f"{series.values[-1]:.2f} kWh over {len(series)} readings"
            )
    finally:
        publisher.stop()
        worker.stop()
        stop_sim()
        broker.stop()
        outbox.close()
        store.close()
    return {"meters": meters, "readings_stored": stats.readings_stored, "rejected": stats.rejected}
