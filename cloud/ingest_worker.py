"""The MQTT side of ingest: subscribe, hand each message to IngestService, then acknowledge.

Acknowledgement is manual: the broker hears PUBACK only after the message's outcome is
durable, so a worker killed mid-batch leaves the message with the broker for redelivery.
With ``share_group`` set, several workers split one shared subscription.
"""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as mqtt

from cloud.ingest import IngestService
from edge.wire import BrokerAddress

log = logging.getLogger(__name__)


class IngestWorker:
    """One MQTT session feeding an IngestService."""

    def __init__(
        self,
        service: IngestService,
        broker_url: str,
        *,
        client_id: str,
        share_group: str | None = None,
    ) -> None:
        self.service = service
        self.broker = BrokerAddress.parse(broker_url)
        topic = service.topics.readings_filter()
        self.subscription = f"$share/{share_group}/{topic}" if share_group else topic
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            manual_ack=True,
        )
        if self.broker.username:
            self._client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            self._client.tls_set()
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:  # type: ignore[no-untyped-def]
        if reason_code.is_failure:
            log.warning("ingest: broker refused connection: %s", reason_code)
            return
        self.connected.set()
        client.subscribe(self.subscription, qos=1)

    def _on_subscribe(self, _client, _userdata, _mid, _codes, _props) -> None:  # type: ignore[no-untyped-def]
        self.subscribed.set()

    def _on_message(self, client, _userdata, msg) -> None:  # type: ignore[no-untyped-def]
        try:
            result = self.service.handle(msg.topic, msg.payload)
        except Exception:
            # Storage is down or broken: leave the message unacknowledged for redelivery.
            log.exception("ingest: message on %s not stored; left for redelivery", msg.topic)
            return
        if result.reason is not None:
            log.warning("ingest: rejected %s: %s: %s", msg.topic, result.reason, result.detail)
        client.ack(msg.mid, msg.qos)

    def start(self, wait_s: float = 10.0) -> None:
        """Connect in the background and wait until the subscription is in place."""
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self._client.loop_start()
        if not self.subscribed.wait(wait_s):
            self.stop()
            raise TimeoutError(
                f"no subscription to {self.subscription} on {self.broker.host}:"
                f"{self.broker.port} within {wait_s} s"
            )

    def run_forever(self) -> None:
        self._client.connect(self.broker.host, self.broker.port, keepalive=30)
        self._client.loop_forever(retry_first_connection=True)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
