"""The API process's MQTT link to the gateways: it subscribes to health, state and command
answers and publishes commands. It runs beside the readings ingest
(:class:`cloud.ingest.worker.IngestWorker`), which it leaves alone.

paho's network thread only queues what arrives; one worker thread hands each message to
:class:`~cloud.gateways.health.GatewayHealthService` or
:class:`~cloud.gateways.dispatch.CommandDispatch`, so a slow registry never stalls keep-alives.
The queue is bounded: when it is full, health reports (QoS 0, sent again soon) are dropped
and counted; state and answers are QoS 1 and wait.

State (``online`` birth, ``offline`` last will) is not signed: it is only as good as the
broker's ACL, which lets nobody but the gateway's own identity write its state topic
(decision 0016). ``state_trust`` says whether to rely on that: ``broker`` (yes), ``ignore``
(never subscribe to state; a gateway's status then follows its signed health alone), or
``auto``: before subscribing, try to connect without credentials; a broker that lets an
anonymous client in cannot vouch for anything, so state is ignored there (and a warning
logged); a broker that refuses it is trusted.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import secrets
import ssl
import threading
from typing import Literal

import paho.mqtt.client as mqtt

from cloud.gateways.commands import CommandError
from cloud.gateways.dispatch import CommandDispatch
from cloud.gateways.health import GatewayHealthService, HealthRejected
from edge.wire.mqtt import BrokerAddress, mqtt_client

log = logging.getLogger(__name__)
_QUEUE_BOUND = 10_000
StateTrust = Literal["auto", "broker", "ignore"]
STATE_TRUST_CHOICES: tuple[StateTrust, ...] = ("auto", "broker", "ignore")


def broker_admits_anonymous(broker: BrokerAddress, timeout_s: float = 5.0) -> bool | None:
    """Whether ``broker`` lets a client in without user and password: True (CONNACK accepted),
    False (refused, or TLS refused a client without certificate), None (no answer within
    ``timeout_s`` seconds: unreachable, try again later)."""
    answered = threading.Event()
    outcome: list[bool] = []

    def on_connect(_client, _userdata, _flags, reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        outcome.append(not reason_code.is_failure)
        answered.set()

    anonymous = dataclasses.replace(broker, username=None, password=None)
    client = mqtt_client(anonymous, f"mf-probe-{secrets.token_hex(4)}", clean_session=True)
    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, keepalive=10)
    except ssl.SSLError:
        return False  # e.g. the listener requires a client certificate
    except OSError:
        return None
    client.loop_start()
    try:
        answered.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0] if outcome else None


class GatewayFeed:
    """One MQTT session for health, state and answers in, commands out."""

    def __init__(
        self,
        health: GatewayHealthService,
        broker_url: str,
        *,
        client_id: str,
        dispatch: CommandDispatch | None = None,
        state_trust: StateTrust = "broker",
    ) -> None:
        if state_trust not in STATE_TRUST_CHOICES:
            raise ValueError(f"state_trust {state_trust!r}: expected one of {STATE_TRUST_CHOICES}")
        self.health = health
        self.dispatch = dispatch
        self.prefix = health.prefix
        self.broker = BrokerAddress.parse(broker_url)
        self.subscribed = threading.Event()
        self.dropped = 0
        self.state_trust = state_trust
        #: whether state messages are taken: None until ``auto`` has had the broker's answer
        self.state_trusted: bool | None = {"broker": True, "ignore": False}.get(state_trust)
        self._stopping = threading.Event()
        self._inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(_QUEUE_BOUND)
        self._worker = threading.Thread(target=self._work, name="gateway-feed", daemon=True)
        self._client = mqtt_client(self.broker, client_id, clean_session=True)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    @property
    def filters(self) -> list[tuple[str, int]]:
        """The subscriptions: health (QoS 0), answers and, when trusted, state (QoS 1)."""
        p = self.prefix
        state = [(f"{p}/+/+/state", 1)] if self.state_trusted else []
        return [(f"{p}/+/+/up/health", 0), *state, (f"{p}/+/+/up/ack", 1)]

    def _decide_state_trust(self) -> None:
        if self.state_trusted is not None:
            return
        admits = broker_admits_anonymous(self.broker)
        if admits is None:
            log.warning("gateway feed: no answer to the anonymous probe; state ignored for now")
            return
        self.state_trusted = not admits
        if admits:
            log.warning(
                "gateway feed: the broker at %s:%d accepts anonymous clients, so anyone could "
                "write a gateway's online/offline state: state messages are ignored (use the "
                "shipped broker config, deploy/mosquitto/, or MF_WEB_GATEWAY_STATE=broker)",
                self.broker.host,
                self.broker.port,
            )

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("gateway feed: broker refused connection: %s", reason_code)
            return
        self._decide_state_trust()
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
                    if self.state_trusted:
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
