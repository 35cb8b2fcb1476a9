"""Runs a gateway: the MQTT session, the polling schedule, the outbox pump and health."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

from pydantic import JsonValue

from edge.agent import GatewayAgent, RoundReport
from edge.commands import CloudKeyStore, Command, CommandLog, CommandReceiver
from edge.config import SiteConfig
from edge.health import serve_metrics, write_status
from edge.keys import GatewayIdentity
from edge.outbox import OutboxStore
from edge.provision import CLOUD_KEY
from edge.publisher import MqttPublisher
from edge.wire import Topics, seal_health
from edge.wire.mqtt import TlsFiles

log = logging.getLogger(__name__)


class StartError(Exception):
    """The gateway cannot start here (e.g. its metrics port is taken); one line saying why."""


def _command_receiver(
    site: SiteConfig,
    identity: GatewayIdentity,
    data_dir: Path,
    publisher: MqttPublisher,
    topics: Topics | None,
) -> CommandReceiver | None:
    """The cloud-command channel, when the gateway was provisioned with the cloud's key."""
    if not (data_dir / CLOUD_KEY).exists():
        log.info("no %s in %s: cloud commands are off", CLOUD_KEY, data_dir)
        return None
    return CommandReceiver(
        site=site.site,
        gateway=site.gateway,
        identity=identity,
        cloud_keys=CloudKeyStore.open(data_dir),
        publish=publisher.publish_message,
        command_log=CommandLog(data_dir / "commands.sqlite"),
        topics=topics,
    )


async def run_gateway(
    site: SiteConfig,
    identity: GatewayIdentity,
    data_dir: Path,
    broker_url: str,
    *,
    topics: Topics | None = None,
    tls: TlsFiles | None = None,
    rounds: int | None = None,
    stop: threading.Event | None = None,
    metrics: bool = True,
    config_path: Path | None = None,
) -> None:
    """Run until ``stop`` is set (SIGTERM in the CLI) or ``rounds`` rounds have run.

    A ``reload_config`` command from the cloud re-reads ``config_path`` and, when it is
    valid and names the same site and gateway, restarts polling with it.
    """
    stop = stop or threading.Event()
    data_dir.mkdir(parents=True, exist_ok=True)
    outbox = OutboxStore(data_dir / "outbox.sqlite")
    publisher = MqttPublisher(
        broker_url,
        site=site.site,
        gateway=site.gateway,
        on_acked=outbox.acknowledge,
        topics=topics,
        tls=tls,
    )
    agent = GatewayAgent(site, identity, outbox, publisher)
    if metrics and site.metrics_port:
        try:
            serve_metrics(lambda: agent.health(), site.metrics_port)
        except OSError as exc:
            await agent.close()
            outbox.close()
            raise StartError(
                f"metrics_port = {site.metrics_port}: cannot listen on 127.0.0.1:"
                f"{site.metrics_port} ({exc.strerror}); expected a free port, or 0 for no metrics"
            ) from None
        log.info("metrics on http://127.0.0.1:%d/metrics", site.metrics_port)
    loop = asyncio.get_running_loop()
    reload = asyncio.Event()  # a reload_config command was accepted
    stopping = asyncio.Event()  # SIGTERM / stop: for good
    halt = asyncio.Event()  # ends the current polling run (either of the two above)
    receiver = _command_receiver(site, identity, data_dir, publisher, topics)
    if receiver is not None:

        async def read_meter(command: Command) -> dict[str, JsonValue]:
            readings = await agent.read_meter_now(str(command.args.get("meter", "")))
            return {
                "readings": [
                    {
                        "quantity": r.quantity,
                        "quality": r.quality.value,
                        "value": None if r.value is None else str(r.value),
                        "unit": r.unit,
                    }
                    for r in readings
                ]
            }

        async def sync_time(_command: Command) -> dict[str, JsonValue]:
            return {"lines": await agent.sync_time()}

        async def reload_config(_command: Command) -> dict[str, JsonValue]:
            if config_path is None:
                raise ValueError("this gateway was started without a configuration file")
            new = SiteConfig.load(config_path)  # ConfigError is reported in the ack
            if (new.site, new.gateway) != (site.site, site.gateway):
                raise ValueError(
                    f"{config_path} names {new.site}/{new.gateway}, this gateway "
                    f"is {site.site}/{site.gateway}"
                )
            reload.set()
            halt.set()
            return {"lines": len(new.lines), "meters": sum(len(x.meters) for x in new.lines)}

        receiver.register("read_meter", read_meter)
        receiver.register("sync_time", sync_time)
        receiver.register("reload_config", reload_config)
        publisher.subscribe(
            receiver.command_topic,
            lambda body: asyncio.run_coroutine_threadsafe(receiver.handle(body), loop),
        )
    publisher.start()
    status_path = data_dir / "status.json"
    last_health = 0.0

    def after_round(report: RoundReport) -> None:
        nonlocal last_health
        log.info(
            "round %s: %d good, %d failed, %d sidelined meters skipped, %.2f s",
            report.round_id,
            report.good,
            report.failed,
            report.skipped_meters,
            report.duration_s,
        )
        health = agent.health()
        write_status(status_path, health)
        if time.monotonic() - last_health >= site.health_interval_s:
            publisher.publish_health(seal_health(health, identity.private_key))
            last_health = time.monotonic()

    def _stopped() -> None:
        stopping.set()
        halt.set()

    # ``stop`` is a threading.Event (set by a signal handler or another thread); a watcher
    # thread carries it into the loop. It is joined before this coroutine returns, so it
    # never calls into the loop after asyncio.run has closed it.
    finished = threading.Event()

    def watch() -> None:
        stop.wait()
        if not finished.is_set():
            loop.call_soon_threadsafe(_stopped)

    watcher = threading.Thread(target=watch, name="gateway-stop-watcher", daemon=True)
    watcher.start()
    try:
        while True:
            await agent.run(halt, rounds=rounds, on_round=after_round)
            if stopping.is_set() or not reload.is_set():
                break
            reload.clear()
            halt.clear()
            assert config_path is not None
            site = SiteConfig.load(config_path)
            await agent.close()
            agent = GatewayAgent(site, identity, outbox, publisher)
            log.info("configuration reloaded from %s", config_path)
        deadline = time.monotonic() + 5  # give the last envelopes a moment to be acked
        while outbox.depth().unacked_envelopes and time.monotonic() < deadline:
            agent.pump()
            await asyncio.sleep(0.05)
    finally:
        try:
            write_status(status_path, agent.health())
            await agent.close()
        finally:
            # paho's thread (which hands commands to the loop) and the watcher end here,
            # while the loop still runs.
            publisher.stop()
            outbox.close()
            finished.set()
            stop.set()
            watcher.join()
