"""The MQTT session both sides open: the broker's address (``mqtt://`` / ``mqtts://`` URL) and
a paho-mqtt 2.x client set up one way (auth, TLS, reconnect back-off, last will)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker listens: ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://``."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker URL {url!r}: expected mqtt://host[:port] or mqtts://...")
        tls = parts.scheme == "mqtts"
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


@dataclass(frozen=True)
class TlsFiles:
    """CA bundle and optional client certificate/key (PEM paths) for ``mqtts://``."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def mqtt_client(
    broker: BrokerAddress,
    client_id: str,
    *,
    clean_session: bool,
    manual_ack: bool = False,
    tls: TlsFiles | None = None,
    will: tuple[str, bytes] | None = None,
) -> mqtt.Client:
    """A paho-mqtt 2.x client set up the one way every side uses: MQTT 3.1.1, the broker's
    user and password, TLS for ``mqtts://`` (or when ``tls`` files are given), reconnect
    back-off from 1 to 30 s, and an optional retained last will (QoS 1) on ``will[0]``.
    """
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        manual_ack=manual_ack,
    )
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls or tls:
        tls = tls or TlsFiles()
        client.tls_set(ca_certs=tls.ca_file, certfile=tls.cert_file, keyfile=tls.key_file)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client
