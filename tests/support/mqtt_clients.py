"""Plain MQTT clients for tests: publish raw bytes (genuine or forged) at QoS 1."""

from __future__ import annotations

import itertools

import paho.mqtt.client as mqtt

from edge.wire.mqtt import BrokerAddress

_ids = itertools.count()


def publish_raw(broker_url: str, topic: str, bodies: list[bytes], timeout_s: float = 10) -> None:
    """Publish each body at QoS 1 and wait for every PUBACK."""
    broker = BrokerAddress.parse(broker_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{next(_ids)}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, body, qos=1) for body in bodies]
        for info in infos:
            info.wait_for_publish(timeout_s)
            assert info.is_published(), f"no PUBACK within {timeout_s} s"
    finally:
        client.disconnect()
        client.loop_stop()
