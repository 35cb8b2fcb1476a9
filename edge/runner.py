"""Runs a gateway: the MQTT session, the polling schedule and the outbox pump together."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from edge.agent import GatewayAgent
from edge.config import SiteConfig
from edge.keys import GatewayIdentity
from edge.outbox import OutboxStore
from edge.publisher import MqttPublisher
from edge.wire import Topics

log = logging.getLogger(__name__)


async def run_gateway(site: SiteConfig, identity: GatewayIdentity, outbox_path: Path,
                      broker_url: str, *, topics: Topics | None = None,
                      rounds: int | None = None, stop: threading.Event | None = None) -> None:
    """Poll every ``site.poll_interval_s`` seconds (rounds start on interval boundaries of
    the wall clock) until ``stop`` is set or ``rounds`` rounds have run."""
    stop = stop or threading.Event()
    outbox = OutboxStore(outbox_path)
    publisher = MqttPublisher(broker_url, site=site.site, gateway=site.gateway,
                              on_acked=outbox.acknowledge, topics=topics)
    agent = GatewayAgent(site, identity, outbox, publisher)
    publisher.start()
    resent = agent.resend_unacked()
    if resent:
        log.info("resending %d envelopes left from the previous run", resent)
    done = 0
    try:
        while not stop.is_set() and (rounds is None or done < rounds):
            report = await agent.poll_round()
            agent.pump()
            done += 1
            log.info("round %s: %d good, %d failed", report.round_id, report.good,
                     report.failed)
            interval = site.poll_interval_s
            delay = interval - (time.time() % interval)
            while delay > 0 and not stop.is_set() and (rounds is None or done < rounds):
                await asyncio.sleep(min(delay, 0.5))
                delay -= 0.5
        deadline = time.monotonic() + 5
        while outbox.depth().unacked_envelopes and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await agent.close()
        publisher.stop()
        outbox.close()
