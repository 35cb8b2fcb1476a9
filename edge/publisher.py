"""Publishing sealed envelopes over MQTT (paho-mqtt 2.x, QoS 1) and learning of PUBACKs.

The publisher owns the MQTT session: birth and last will on the state topic, reconnect with
backoff, TLS when the broker URL is ``mqtts://``. It reports each acknowledged envelope's
seq to a callback (the outbox deletes it then); it never decides what to send.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge.outbox import SealedEnvelope
from edge.wire import Topics
from edge.wire.mqtt import BrokerAddress, TlsFiles, mqtt_client

log = logging.getLogger(__name__)


class MqttPublisher:
    """One gateway's MQTT session."""

    def __init__(
        self,
        broker_url: str,
        *,
        site: str,
        gateway: str,
        on_acked: Callable[[int], None],
        topics: Topics | None = None,
        tls: TlsFiles | None = None,
        max_inflight: int = 20,
    ) -> None:
        self.broker = BrokerAddress.parse(broker_url)
        self.topics = topics or Topics()
        self.site = site
        self.gateway = gateway
        self._on_acked = on_acked
        self._lock = threading.Lock()
        # MQTT message id -> envelope seq (None for other messages). paho may report a
        # PUBACK before publish() returns the mid, so such early mids wait in _early.
        self._inflight: dict[int, int | None] = {}
        self._early: set[int] = set()
        self.connected = threading.Event()
        state = self.topics.state(site, gateway)
        self._client = mqtt_client(
            self.broker,
            f"gw-{site}-{gateway}",
            clean_session=False,
            tls=tls,
            will=(state, b"offline"),
        )
        self._client.max_inflight_messages_set(max_inflight)
        # The agent publishes only while connected and keeps at most MAX_IN_FLIGHT
        # envelopes with paho; the outbox, not paho's memory, holds the backlog.
        self._client.max_queued_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._subscriptions: dict[str, Callable[[bytes], None]] = {}

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("broker refused connection: %s", reason_code)
            return
        self._publish(self.topics.state(self.site, self.gateway), b"online", None, retain=True)
        for topic in self._subscriptions:
            client.subscribe(topic, qos=1)
        self.connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        self.connected.clear()
        log.info("disconnected from broker: %s", reason_code)

    def _on_publish(self, _client, _userdata, mid, _reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        with self._lock:
            if mid not in self._inflight:
                self._early.add(mid)
                return
            seq = self._inflight[mid]
        self._settle(mid, seq)

    def _settle(self, mid: int, seq: int | None) -> None:
        """The broker has the message: tell the outbox first, then stop counting it in
        flight, so that nobody sees it neither in flight nor acknowledged and sends it
        again."""
        if seq is not None:
            self._on_acked(seq)
        with self._lock:
            self._inflight.pop(mid, None)

    def _publish(self, topic: str, body: bytes, seq: int | None, retain: bool = False) -> None:
        # Never hold self._lock while calling into paho: paho calls on_publish with its own
        # lock held, and the two locks taken in opposite orders would deadlock.
        info = self._client.publish(topic, body, qos=1, retain=retain)
        with self._lock:
            self._inflight[info.mid] = seq
            acked = info.mid in self._early
            self._early.discard(info.mid)
        if acked:
            self._settle(info.mid, seq)

    def start(self) -> None:
        """Connect in the background; reconnects by itself."""
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self._client.loop_start()

    def publish(self, envelope: SealedEnvelope) -> None:
        """Queue ``envelope`` at QoS 1. paho resends it after a reconnect until PUBACK."""
        self._publish(self.topics.readings(self.site, self.gateway), envelope.body, envelope.seq)

    def inflight(self) -> int:
        return len(self.inflight_seqs())

    def inflight_seqs(self) -> set[int]:
        """Seqs handed to paho and not yet acknowledged by the broker."""
        with self._lock:
            return {seq for seq in self._inflight.values() if seq is not None}

    def subscribe(self, topic: str, on_message: Callable[[bytes], None]) -> None:
        """Receive ``topic`` (QoS 1) from now on and after every reconnect; ``on_message``
        runs on paho's thread with the payload."""
        self._subscriptions[topic] = on_message
        if self.connected.is_set():
            self._client.subscribe(topic, qos=1)

    def _on_message(self, _client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        handler = self._subscriptions.get(msg.topic)
        if handler is not None:
            handler(msg.payload)

    def publish_message(self, topic: str, body: bytes) -> None:
        """A message that is not an envelope of readings (a command's ack), QoS 1."""
        self._publish(topic, body, None)

    def publish_health(self, body: bytes) -> None:
        """Health goes at QoS 0: a lost one is replaced by the next."""
        if self.connected.is_set():
            self._client.publish(self.topics.health(self.site, self.gateway), body, qos=0)

    def stop(self) -> None:
        if self.connected.is_set():
            info = self._client.publish(
                self.topics.state(self.site, self.gateway), b"offline", qos=1, retain=True
            )
            info.wait_for_publish(timeout=2)
        self._client.disconnect()
        self._client.loop_stop()
