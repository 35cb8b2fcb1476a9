"""The API process's MQTT link to the gateways: it subscribes to health, state and command
answers and publishes commands. It runs beside the readings ingest
(:class:`cloud.ingest.worker.IngestWorker`), which it leaves alone.

paho's network thread only queues what arrives; one worker thread hands each message to
:class:`~cloud.gateways.health.GatewayHealthService` or
:class:`~cloud.gateways.dispatch.CommandDispatch`, so a slow registry never stalls keep-alives.
The queue is bounded: when it is full, health reports (QoS 0, sent again soon) are dropped
and counted; state and answers are QoS 1 and wait.
"""

from __future__ import annotations

import logging
import queue
import threading

import paho.mqtt.client as mqtt

from cloud.gateways.commands import CommandError
from cloud.gateways.dispatch import CommandDispatch
from cloud.gateways.health import GatewayHealthService, HealthRejected
from edge.wire.mqtt import BrokerAddress, mqtt_client

log = logging.getLogger(__name__)
_QUEUE_BOUND = 10_000


class GatewayFeed:
    """One MQTT session for health, state and answers in, commands out."""

    def __init__(
        self,
        health: GatewayHealthService,
        broker_url: str,
        *,
        client_id: str,
        dispatch: CommandDispatch | None = None,
    ) -> None:
        self.health = health
        self.dispatch = dispatch
        self.prefix = health.prefix
        self.broker = BrokerAddress.parse(broker_url)
        self.subscribed = threading.Event()
        self.dropped = 0
        self._stopping = threading.Event()
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(_QUEUE_BOUND)
        self._worker = threading.Thread(target=self._work, name="gateway-feed", daemon=True)
        self._client = mqtt_client(self.broker, client_id, clean_session=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @property
    def filters(self) -> list[tuple[str, int]]:
        """The subscriptions: health (QoS 0), state and answers (QoS 1)."""
        p = self.prefix
        return [(f"{p}/+/+/up/health", 0), (f"{p}/+/+/state", 1), (f"{p}/+/+/up/ack", 1)]

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("gateway feed: broker refused connection: %s", reason_code)
            return
        client.subscribe(self.filters)

    def _on_subscribe(self, _client, _userdata, _mid, _codes, _props) -> None:  # type: ignore[no-untyped-def]
        self.subscribed.set()

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        item = (msg.topic, bytes(msg.payload))
        if msg.topic.endswith("/up/health"):
            try:
                self._inbox.put_nowait(item)
            except queue.Full:
                self.dropped += 1
            return
        while not self._stopping.is_set():
            try:
                self._inbox.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                topic, payload = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                if topic.endswith("/up/health"):
                    self.health.take_health(topic, payload)
                elif topic.endswith("/state"):
                    self.health.take_state(topic, payload)
                elif self.dispatch is not None:
                    self.dispatch.take_ack(payload)
            except (HealthRejected, CommandError) as exc:
                log.warning("gateway feed: refused %s: %s", topic, exc)
            except Exception:
                log.exception("gateway feed: %s not stored", topic)

    def publish(self, topic: str, envelope: bytes) -> None:
        """Publish a command (QoS 1); OSError when the broker is not connected."""
        if not self._client.is_connected():
            raise OSError(f"not connected to {self.broker.host}:{self.broker.port}")
        info = self._client.publish(topic, envelope, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise OSError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")

    def start(self, wait_s: float = 10.0) -> None:
        """Connect in the background; wait up to ``wait_s`` for the subscriptions."""
        self._worker.start()
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self._client.loop_start()
        if wait_s and not self.subscribed.wait(wait_s):
            log.warning(
                "gateway feed: not subscribed on %s:%d within %.0f s; retrying in the background",
                self.broker.host,
                self.broker.port,
                wait_s,
            )

    def stop(self) -> None:
        self._stopping.set()
        if self._worker.is_alive():
            self._worker.join(5)
        self._client.disconnect()
        self._client.loop_stop()
