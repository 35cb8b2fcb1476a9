"""The shipped broker ACL on a real mosquitto (deploy/mosquitto/meterflow.acl, users made by
deploy/mosquitto/broker-users.sh, started by deploy/local/mosquitto.sh --passwd/--acl).

Denied publishes are acknowledged by mosquitto all the same (MQTT 3.1.1 has no way to say
no), and denied subscriptions are granted but deliver nothing; so every check here is what a
second, real client receives. Each test ends with a message that must arrive, published after
the ones that must not: QoS 1 from one client keeps its order, so once it is in, anything
the broker let through would be in too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import servers

pytestmark = pytest.mark.mosquitto


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


def test_the_production_config_refuses_anonymous_clients_and_uses_the_acl() -> None:
    conf = Path(servers.REPO_ROOT / "deploy" / "mosquitto" / "meterflow.conf").read_text()
    lines = {
        line.split()[0]: line.split()[1:] for line in conf.splitlines() if line and line[0] != "#"
    }
    assert lines["allow_anonymous"] == ["false"]
    assert lines["password_file"] and lines["acl_file"] == ["/etc/mosquitto/meterflow.acl"]
    assert lines["listener"] == ["8883"] and lines["certfile"] and lines["keyfile"]
