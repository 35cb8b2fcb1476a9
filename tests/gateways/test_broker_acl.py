"""The shipped broker ACL on a real mosquitto (deploy/mosquitto/meterflow.acl, users made by
deploy/mosquitto/broker-users.sh, started by deploy/local/mosquitto.sh --passwd/--acl).

Denied publishes are acknowledged by mosquitto all the same (MQTT 3.1.1 has no way to say
no), and denied subscriptions are granted but deliver nothing; so every check here is what a
second, real client receives. Each test ends with a message that must arrive, published after
the ones that must not: QoS 1 from one client keeps its order, so once it is in, anything
the broker let through would be in too.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge.wire import MAX_ENVELOPE_BYTES
from edge.wire.mqtt import BrokerAddress, TlsFiles, mqtt_client
from tests.support import servers
from tests.support.servers import HOST

pytestmark = pytest.mark.mosquitto
SHIPPED_CONF = servers.REPO_ROOT / "deploy" / "mosquitto" / "meterflow.conf"


def up(site: str, gateway: str, kind: str = "readings") -> str:
    return f"mf/v1/{site}/{gateway}/up/{kind}"


def test_clients_without_valid_credentials_are_refused(connect, broker) -> None:  # type: ignore[no-untyped-def]
    assert connect(None).reason == "Not authorized"
    assert connect("gw-a1", "not-its-password").reason == "Not authorized"
    assert connect("gw-a1", broker.passwords["gw-a2"]).reason == "Not authorized"
    assert connect("nobody", broker.passwords["gw-a1"]).reason == "Not authorized"
    assert connect("gw-a1").accepted  # and its own password lets it in


def test_a_gateway_cannot_publish_on_another_gateways_topics(connect) -> None:  # type: ignore[no-untyped-def]
    api = connect("mf-api")  # reads every up/ and state topic
    api.subscribe("mf/v1/+/+/up/#", "mf/v1/+/+/state")
    gw_a2 = connect("gw-a2")
    gw_a2.subscribe("mf/v1/site-a/gw-a2/down/cmd")
    gw_a1 = connect("gw-a1")
    forged = [
        up("site-a", "gw-a2"),  # a neighbour's readings, health and answers
        up("site-a", "gw-a2", "health"),
        up("site-a", "gw-a2", "ack"),
        "mf/v1/site-a/gw-a2/state",  # a neighbour's online/offline
        up("site-b", "gw-b1"),  # another site's gateway
        up("site-b", "gw-a1"),  # its own gateway id under another site
        "mf/v1/site-b/gw-a1/state",
        "mf/v1/site-a/gw-a2/down/cmd",  # commands, to a neighbour or itself
        "mf/v1/site-a/gw-a1/down/cmd",
        "mf/v1/site-a/gw-a1/up",  # beside the three kinds the cloud reads
        "mf/v1/site-a/gw-a1/up/junk",
        "mf/v1/site-a/gw-a1/other",
    ]
    for topic in forged:
        gw_a1.publish(topic, b"forged by gw-a1")
    gw_a1.publish(up("site-a", "gw-a1"), b"own readings")
    gw_a1.publish(up("site-a", "gw-a1", "health"), b"own health")
    gw_a1.publish("mf/v1/site-a/gw-a1/state", b"online", retain=True)
    api.wait_for("mf/v1/site-a/gw-a1/state", b"online")
    assert api.received == [
        (up("site-a", "gw-a1"), b"own readings"),
        (up("site-a", "gw-a1", "health"), b"own health"),
        ("mf/v1/site-a/gw-a1/state", b"online"),
    ]
    assert gw_a2.received == []
    gw_a1.publish("mf/v1/site-a/gw-a1/state", b"", retain=True)  # clear the retained birth


def test_a_gateway_cannot_read_another_gateways_commands_or_data(connect) -> None:  # type: ignore[no-untyped-def]
    gw_a1 = connect("gw-a1")
    gw_a1.subscribe(
        "mf/v1/site-a/gw-a2/down/cmd", "mf/v1/+/+/down/cmd", "mf/v1/#", "#", "$share/x/mf/v1/#"
    )
    gw_a2 = connect("gw-a2")
    gw_a2.subscribe("mf/v1/site-a/gw-a2/down/cmd")
    gw_b1 = connect("gw-b1")
    gw_b1.publish(up("site-b", "gw-b1"), b"b1 readings")
    gw_a2.publish(up("site-a", "gw-a2"), b"a2 readings")
    gw_a2.publish("mf/v1/site-a/gw-a2/state", b"online", retain=True)
    api = connect("mf-api")
    api.publish("mf/v1/site-a/gw-a2/down/cmd", b"command for gw-a2")
    api.publish("mf/v1/site-b/gw-b1/down/cmd", b"command for gw-b1")
    api.publish("mf/v1/site-a/gw-a1/down/cmd", b"command for gw-a1")
    gw_a2.wait_for("mf/v1/site-a/gw-a2/down/cmd", b"command for gw-a2")
    gw_a1.wait_for("mf/v1/site-a/gw-a1/down/cmd", b"command for gw-a1")
    assert gw_a1.received == [("mf/v1/site-a/gw-a1/down/cmd", b"command for gw-a1")]
    assert gw_a2.received == [("mf/v1/site-a/gw-a2/down/cmd", b"command for gw-a2")]
    gw_a2.publish("mf/v1/site-a/gw-a2/state", b"", retain=True)


def test_ingest_reads_every_gateways_up_topics_and_writes_nothing(connect) -> None:  # type: ignore[no-untyped-def]
    ingest = connect("mf-ingest")
    ingest.subscribe("$share/ingest/mf/v1/+/+/up/readings", "mf/v1/+/+/up/health")
    api = connect("mf-api")
    api.subscribe("mf/v1/+/+/up/#", "mf/v1/+/+/state")
    gw_a1 = connect("gw-a1")
    gw_a1.subscribe("mf/v1/site-a/gw-a1/down/cmd")
    sent = [
        ("gw-a1", up("site-a", "gw-a1"), b"a1 readings"),
        ("gw-b1", up("site-b", "gw-b1"), b"b1 readings"),
        ("gw-a2", up("site-a", "gw-a2", "health"), b"a2 health"),
    ]
    for user, topic, body in sent:
        (gw_a1 if user == "gw-a1" else connect(user)).publish(topic, body)
    for _, topic, body in sent:
        ingest.wait_for(topic, body)
    # the ingest identity may not speak for a gateway nor command one
    ingest.publish(up("site-a", "gw-a1"), b"forged by ingest")
    ingest.publish("mf/v1/site-a/gw-a1/state", b"offline")
    ingest.publish("mf/v1/site-a/gw-a1/down/cmd", b"command by ingest")
    api.publish("mf/v1/site-a/gw-a1/down/cmd", b"command by api")
    gw_a1.wait_for("mf/v1/site-a/gw-a1/down/cmd", b"command by api")
    assert gw_a1.received == [("mf/v1/site-a/gw-a1/down/cmd", b"command by api")]
    assert sorted(ingest.received) == sorted((t, b) for _, t, b in sent)
    assert sorted(api.received) == sorted((t, b) for _, t, b in sent)


def test_a_gateways_will_reaches_the_api_under_its_own_identity_only(connect) -> None:  # type: ignore[no-untyped-def]
    api = connect("mf-api")
    api.subscribe("mf/v1/+/+/state")
    gw_b1 = connect("gw-b1", will=("mf/v1/site-b/gw-b1/state", b"offline"))
    gw_b1.publish("mf/v1/site-b/gw-b1/state", b"online", retain=True)
    # a will is checked against the ACL like any publish: gw-a2 cannot leave one for gw-b1
    liar = connect("gw-a2", will=("mf/v1/site-b/gw-b1/state", b"online"))
    liar.vanish()
    gw_b1.vanish()
    api.wait_for("mf/v1/site-b/gw-b1/state", b"offline")
    assert api.received == [
        ("mf/v1/site-b/gw-b1/state", b"online"),
        ("mf/v1/site-b/gw-b1/state", b"offline"),
    ]
    connect("gw-b1").publish("mf/v1/site-b/gw-b1/state", b"", retain=True)


def test_a_gateway_added_later_gets_in_after_a_reload(connect, broker) -> None:  # type: ignore[no-untyped-def]
    password = broker.add_gateway("site-c", "gw-c1")
    assert connect("gw-c1", password).reason == "Not authorized"  # not yet reloaded
    broker.reload()
    api = connect("mf-api")
    api.subscribe("mf/v1/+/+/up/#")
    gw_c1 = connect("gw-c1", password)
    assert gw_c1.accepted
    gw_c1.publish(up("site-a", "gw-a1"), b"forged by gw-c1")
    gw_c1.publish(up("site-c", "gw-c1"), b"c1 readings")
    api.wait_for(up("site-c", "gw-c1"), b"c1 readings")
    assert api.received == [(up("site-c", "gw-c1"), b"c1 readings")]
    broker.users("remove", "gw-c1")
    broker.reload()
    assert connect("gw-c1", password).reason == "Not authorized"


def _tls_files(directory: Path) -> Path:
    """A CA and the broker's certificate for 127.0.0.1 in ``directory`` (ca.crt,
    broker.crt, broker.key); returns the CA file."""
    now = dt.datetime.now(dt.UTC)

    def issue(subject: str, signer: ec.EllipticCurvePrivateKey | None, issuer: x509.Name | None):  # type: ignore[no-untyped-def]
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer or name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=signer is None, path_length=None), True)
        )
        if signer is not None:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))])
            builder = builder.add_extension(san, critical=False)
        return key, builder.sign(signer or key, hashes.SHA256())

    ca_key, ca_cert = issue("meterflow test CA", None, None)
    key, cert = issue(HOST, ca_key, ca_cert.subject)
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca_cert.public_bytes(pem))
    (directory / "broker.crt").write_bytes(cert.public_bytes(pem))
    (directory / "broker.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return directory / "ca.crt"


def test_the_production_config_as_shipped_serves_tls_to_users_only(  # type: ignore[no-untyped-def]
    broker, tmp_path_factory
) -> None:
    """deploy/mosquitto/meterflow.conf with only its paths and port changed: over TLS an
    anonymous client is refused, a user of the password file gets in; plain MQTT is not
    served."""
    tmp_path = tmp_path_factory.mktemp("production-conf")
    base = tmp_path_factory.getbasetemp()
    top = base.parent if base.parent.name.startswith("pytest-of-") else base
    servers.make_traversable(tmp_path, top)
    for sub in ("certs", "data", "etc"):
        (tmp_path / sub).mkdir()
    ca = _tls_files(tmp_path / "certs")
    shutil.copyfile(broker.password_file, tmp_path / "etc" / "meterflow.passwd")
    shutil.copyfile(broker.acl_file, tmp_path / "etc" / "meterflow.acl")
    port = servers.free_port()
    conf = SHIPPED_CONF.read_text()
    for shipped, local in (
        ("/etc/mosquitto/certs/", f"{tmp_path}/certs/"),
        ("/etc/mosquitto/", f"{tmp_path}/etc/"),
        ("/var/lib/mosquitto/", f"{tmp_path}/data/"),
        ("listener 8883", f"listener {port} {HOST}"),
    ):
        assert shipped in conf
        conf = conf.replace(shipped, local)
    (tmp_path / "mosquitto.conf").write_text(conf)
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        if os.geteuid() == 0:
            shutil.chown(path, "mosquitto")  # it drops to user mosquitto
    log = (tmp_path / "mosquitto.log").open("wb")
    mosquitto = subprocess.Popen(
        [
            servers.require(servers.find_mosquitto, "mosquitto", "mosquitto"),
            "-c",
            str(tmp_path / "mosquitto.conf"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while not servers.port_open(port):
            assert mosquitto.poll() is None and time.monotonic() < deadline, (
                tmp_path / "mosquitto.log"
            ).read_text()
            time.sleep(0.05)
        url = f"mqtts://127.0.0.1:{port}"
        tls = TlsFiles(str(ca))
        assert tls_connack(url, tls) == "Not authorized"  # anonymous
        secret = quote(broker.passwords["mf-api"], safe="")
        assert tls_connack(f"mqtts://mf-api:{secret}@{HOST}:{port}", tls) == "Success"
        assert tls_connack(f"mqtts://mf-api:wrong@{HOST}:{port}", tls) == "Not authorized"
        with pytest.raises(OSError):
            tls_connack(f"mqtt://{HOST}:{port}", None, timeout_s=3)
    finally:
        mosquitto.terminate()
        mosquitto.wait(15)
        log.close()


def tls_connack(url: str, tls: TlsFiles | None, timeout_s: float = 10) -> str:
    """The CONNACK's reason for a client of ``url``; OSError when none comes."""
    broker = BrokerAddress.parse(url)
    answered = threading.Event()
    reason: list[str] = []
    client = mqtt_client(broker, f"tls-probe-{time.monotonic_ns()}", clean_session=True, tls=tls)
    client.on_connect = lambda _c, _u, _f, rc, _p: (reason.append(str(rc)), answered.set())
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        if not answered.wait(timeout_s):
            raise OSError(f"no CONNACK from {broker.host}:{broker.port} in {timeout_s} s")
    finally:
        client.disconnect()
        client.loop_stop()
    return reason[0]


def test_the_broker_takes_the_largest_envelope_and_drops_a_packet_over_a_mebibyte(connect) -> None:  # type: ignore[no-untyped-def]
    """max_packet_size (deploy/local/mosquitto.sh as deploy/mosquitto/meterflow.conf): an
    envelope of the largest size the cloud accepts gets through (and one somewhat larger, for
    ingest to dead-letter as oversized); a packet over 1 MiB is never delivered (the broker
    disconnects its sender instead of holding it)."""
    api = connect("mf-api")
    api.subscribe("mf/v1/+/+/up/#")
    oversized = connect("gw-a1")
    info = oversized.client.publish(up("site-a", "gw-a1"), b"x" * (4 * MAX_ENVELOPE_BYTES + 1))
    try:
        info.wait_for_publish(5)
    except RuntimeError as exc:  # the broker drops the sender; paho may notice before it is
        assert "connection was lost" in str(exc)  # done writing (seen once in CI)
    oversized.close()
    largest = b"y" * MAX_ENVELOPE_BYTES
    connect("gw-a1").publish(up("site-a", "gw-a1"), largest)
    api.wait_for(up("site-a", "gw-a1"), largest)
    assert [len(body) for _topic, body in api.received] == [MAX_ENVELOPE_BYTES]


def test_broker_users_refuses_ids_that_cannot_be_broker_users(broker) -> None:  # type: ignore[no-untyped-def]
    before = (broker.password_file.read_text(), broker.acl_file.read_text())
    for args, says in (
        (("gateway", "site-a", "gw:1"), "':' cannot be a broker user"),
        (("gateway", "site/a", "gw-9"), "site id 'site/a'"),
        (("gateway", "site-a", "mf-api"), "is a cloud identity's user name"),
        (("cloud", "gw-a1"), "expected one of mf-ingest mf-api"),
    ):
        with pytest.raises(servers.ServerError, match=re.escape(says)):
            broker.users(*args)
    assert (broker.password_file.read_text(), broker.acl_file.read_text()) == before
    assert "gw-a1\tgateway of site site-a" in broker.users("list")
