"""The gateway's MQTT session over TLS with a client certificate, on a real mosquitto."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.outbox import SealedEnvelope
from edge.publisher import MqttPublisher
from edge.wire.mqtt import TlsFiles
from tests.support import servers


def _cert(
    subject: str,
    issuer_key,
    issuer_name,
    *,
    ca: bool = False,  # type: ignore[no-untyped-def]
    ip: str | None = None,
):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return key, cert


def _write(path: Path, key, cert) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".crt")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for p in (key_path, cert_path):
        p.chmod(0o644)  # the broker drops to the mosquitto user before reading them
    return str(key_path), str(cert_path)


@pytest.fixture()
def tls_broker(tmp_path_factory):
    data = tmp_path_factory.mktemp("mosquitto-tls")
    base = tmp_path_factory.getbasetemp()
    servers.make_traversable(
        data, base.parent if base.parent.name.startswith("pytest-of-") else base
    )
    certs = data / "certs"
    certs.mkdir()
    ca_key, ca_cert = _cert("meterflow test CA", None, None, ca=True)
    _write(certs / "ca", ca_key, ca_cert)
    srv_key, srv_cert = _cert("127.0.0.1", ca_key, ca_cert.subject, ip="127.0.0.1")
    broker_key, broker_crt = _write(certs / "broker", srv_key, srv_cert)
    gw_key, gw_cert = _cert("gw1", ca_key, ca_cert.subject)
    client_key, client_crt = _write(certs / "gw1", gw_key, gw_cert)
    for p in (data, certs):
        p.chmod(0o755)
    tls_port = servers.free_port()
    (data / "conf.d").mkdir()
    (data / "conf.d" / "tls.conf").write_text(
        f"listener {tls_port} 127.0.0.1\ncafile {certs / 'ca.crt'}\ncertfile {broker_crt}\n"
        f"keyfile {broker_key}\nrequire_certificate true\nuse_identity_as_username true\n"
    )
    server = servers.start_mosquitto(data)
    yield server, tls_port, TlsFiles(str(certs / "ca.crt"), client_crt, client_key)
    servers.stop_server(server)


def test_gateway_publishes_over_tls_with_its_client_certificate(tls_broker):
    server, tls_port, tls = tls_broker
    got: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-sub")
    sub.on_message = lambda _c, _u, m: got.append(m.payload)
    sub.connect("127.0.0.1", server.port)
    sub.subscribe("mf/v1/s1/gw1/up/readings", qos=1)
    sub.loop_start()
    acked: list[int] = []
    pub = MqttPublisher(
        f"mqtts://127.0.0.1:{tls_port}", site="s1", gateway="gw1", on_acked=acked.append, tls=tls
    )
    pub.start()
    try:
        assert pub.connected.wait(10), server.log_tail()
        time.sleep(0.3)
        pub.publish(SealedEnvelope(7, b"signed-envelope-bytes", 1))
        deadline = time.monotonic() + 10
        while not (acked and got) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pub.stop()
        sub.loop_stop()
        sub.disconnect()
    assert acked == [7] and got == [b"signed-envelope-bytes"]
    assert "as gw1" in server.log_tail(200) or "u'gw1'" in server.log_tail(200)


def test_a_client_without_a_certificate_is_refused(tls_broker):
    _server, tls_port, tls = tls_broker
    pub = MqttPublisher(
        f"mqtts://127.0.0.1:{tls_port}",
        site="s1",
        gateway="gw1",
        on_acked=lambda _seq: None,
        tls=TlsFiles(tls.ca_file),
    )
    pub.start()
    try:
        assert not pub.connected.wait(3)
    finally:
        pub.stop()
