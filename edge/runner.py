"""Runs a gateway: the MQTT session, the polling schedule, the outbox pump and health."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from edge.agent import GatewayAgent, RoundReport
from edge.config import SiteConfig
from edge.health import serve_metrics, write_status
from edge.keys import GatewayIdentity
from edge.outbox import OutboxStore
from edge.publisher import MqttPublisher, TlsFiles
from edge.wire import Topics, seal_health

log = logging.getLogger(__name__)


async def run_gateway(site: SiteConfig, identity: GatewayIdentity, data_dir: Path,
                      broker_url: str, *, topics: Topics | None = None,
                      tls: TlsFiles | None = None, rounds: int | None = None,
                      stop: threading.Event | None = None, metrics: bool = True) -> None:
    """Run until ``stop`` is set (SIGTERM in the CLI) or ``rounds`` rounds have run."""
    stop = stop or threading.Event()
    data_dir.mkdir(parents=True, exist_ok=True)
    outbox = OutboxStore(data_dir / "outbox.sqlite")
    publisher = MqttPublisher(broker_url, site=site.site, gateway=site.gateway,
                              on_acked=outbox.acknowledge, topics=topics, tls=tls)
    agent = GatewayAgent(site, identity, outbox, publisher)
    if metrics and site.metrics_port:
        serve_metrics(agent.health, site.metrics_port)
        log.info("metrics on http://127.0.0.1:%d/metrics", site.metrics_port)
    publisher.start()
    status_path = data_dir / "status.json"
    last_health = 0.0

    def after_round(report: RoundReport) -> None:
        nonlocal last_health
        log.info("round %s: %d good, %d failed, %d sidelined meters skipped, %.2f s",
                 report.round_id, report.good, report.failed, report.skipped_meters,
                 report.duration_s)
        health = agent.health()
        write_status(status_path, health)
        if time.monotonic() - last_health >= site.health_interval_s:
            publisher.publish_health(seal_health(health, identity.private_key))
            last_health = time.monotonic()

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    watcher = threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(
        stopping.set)), daemon=True)
    watcher.start()
    try:
        await agent.run(stopping, rounds=rounds, on_round=after_round)
        deadline = time.monotonic() + 5  # give the last envelopes a moment to be acked
        while outbox.depth().unacked_envelopes and time.monotonic() < deadline:
            agent.pump()
            await asyncio.sleep(0.05)
    finally:
        write_status(status_path, agent.health())
        await agent.close()
        publisher.stop()
        outbox.close()
        stop.set()
