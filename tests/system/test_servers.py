"""The real-server fixtures give working servers (mosquitto, influxd 1.x, PostgreSQL)."""

from __future__ import annotations

import json
import queue
import threading
import uuid

import paho.mqtt.client as mqtt
import psycopg
import pytest
import urllib3
from paho.mqtt.enums import CallbackAPIVersion

from tests.support import servers
from tests.support.servers import InfluxServer, MosquittoServer, PostgresServer

TIMEOUT = 10.0


def mqtt_client(client_id: str | None = None, *, clean_session: bool = True) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"t-{uuid.uuid4().hex[:12]}",
        clean_session=clean_session,
    )
    client.reconnect_delay_set(min_delay=1, max_delay=1)
    return client


def publish_qos1(server: MosquittoServer, topic: str, payload: bytes) -> None:
    pub = mqtt_client()
    pub.connect(server.host, server.port, keepalive=30)
    pub.loop_start()
    try:
        info = pub.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=TIMEOUT)  # returns once the broker's PUBACK arrived
        assert info.is_published()
    finally:
        pub.disconnect()
        pub.loop_stop()


class Subscriber:
    """A paho client that (re)subscribes in on_connect and queues what it receives."""

    def __init__(
        self,
        server: MosquittoServer,
        topic: str,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
    ) -> None:
        self.server, self.topic = server, topic
        self.connects: queue.Queue[bool] = queue.Queue()  # session_present of each CONNACK
        self.subscribed = threading.Event()
        self.disconnected = threading.Event()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = mqtt_client(client_id, clean_session=clean_session)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.client.on_disconnect = lambda *_args: self.disconnected.set()

    def _on_connect(self, client, _userdata, flags, reason_code, _properties) -> None:
        assert not reason_code.is_failure, reason_code
        self.disconnected.clear()
        self.connects.put(flags.session_present)
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        assert all(not rc.is_failure for rc in reason_codes), reason_codes
        self.subscribed.set()

    def start(self) -> Subscriber:
        self.client.connect(self.server.host, self.server.port, keepalive=30)
        self.client.loop_start()
        return self

    def wait_subscribed(self) -> None:
        assert self.subscribed.wait(TIMEOUT), "no SUBACK"
        self.subscribed.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------- mosquitto


def test_mosquitto_publish_subscribe_qos1(mosquitto_server: MosquittoServer) -> None:
    assert mosquitto_server.url == f"mqtt://127.0.0.1:{mosquitto_server.port}"
    topic = f"mf/test/{uuid.uuid4().hex}"
    sub = Subscriber(mosquitto_server, topic).start()
    try:
        sub.wait_subscribed()
        publish_qos1(mosquitto_server, topic, b'{"kWh": 1.5}')
        msg = sub.messages.get(timeout=TIMEOUT)
        assert (msg.topic, msg.payload, msg.qos) == (topic, b'{"kWh": 1.5}', 1)
    finally:
        sub.close()


def test_mosquitto_restart_on_same_port_client_reconnects(
    mosquitto_server: MosquittoServer,
) -> None:
    port, old_pid = mosquitto_server.port, mosquitto_server.pid
    topic = f"mf/test/{uuid.uuid4().hex}"
    sub = Subscriber(mosquitto_server, topic).start()
    try:
        assert sub.connects.get(timeout=TIMEOUT) is False
        sub.wait_subscribed()

        mosquitto_server.stop()
        assert not mosquitto_server.is_running()
        assert sub.disconnected.wait(TIMEOUT), "client did not notice the broker going away"
        assert not servers.port_open(port)

        mosquitto_server.start()
        assert mosquitto_server.port == port and mosquitto_server.pid != old_pid
        sub.connects.get(timeout=TIMEOUT + 5)  # paho's loop reconnected by itself
        sub.wait_subscribed()
        publish_qos1(mosquitto_server, topic, b"after restart")
        assert sub.messages.get(timeout=TIMEOUT).payload == b"after restart"
    finally:
        sub.close()


def test_mosquitto_crash_then_start_again(mosquitto_server: MosquittoServer) -> None:
    mosquitto_server.kill()  # SIGKILL: no clean shutdown
    assert not mosquitto_server.is_running()
    assert not servers.port_open(mosquitto_server.port)
    mosquitto_server.start()
    topic = f"mf/test/{uuid.uuid4().hex}"
    sub = Subscriber(mosquitto_server, topic).start()
    try:
        sub.wait_subscribed()
        publish_qos1(mosquitto_server, topic, b"after crash")
        assert sub.messages.get(timeout=TIMEOUT).payload == b"after crash"
    finally:
        sub.close()


def test_mosquitto_persistent_session_survives_restart(mosquitto_server: MosquittoServer) -> None:
    """QoS 1 messages queued for an offline persistent session outlive a broker restart."""
    topic = f"mf/test/{uuid.uuid4().hex}"
    client_id = f"persistent-{uuid.uuid4().hex[:8]}"
    sub = Subscriber(mosquitto_server, topic, client_id=client_id, clean_session=False).start()
    sub.wait_subscribed()
    sub.close()  # offline; the broker keeps its session and queues QoS 1 messages for it

    publish_qos1(mosquitto_server, topic, b"queued while offline")
    with mosquitto_server.stopped():
        assert not servers.port_open(mosquitto_server.port)

    sub = Subscriber(mosquitto_server, topic, client_id=client_id, clean_session=False).start()
    try:
        assert sub.connects.get(timeout=TIMEOUT) is True  # session restored from mosquitto.db
        msg = sub.messages.get(timeout=TIMEOUT)
        assert (msg.payload, msg.qos) == (b"queued while offline", 1)
    finally:
        sub.close()


# --------------------------------------------------------------------------- influxd


def test_influxdb_ping(influxdb_server: InfluxServer) -> None:
    resp = urllib3.request("GET", f"{influxdb_server.url}/ping", timeout=TIMEOUT)
    assert resp.status == 204
    assert resp.headers["X-Influxdb-Version"].startswith("1.")


def test_influxdb_write_line_protocol_and_query(fresh_influx_db) -> None:
    base_url, db = fresh_influx_db
    line = 'reading,site=s1,meter=m1,quantity=energy_import value=12.5,quality="good" 1700000000'
    resp = urllib3.request(
        "POST", f"{base_url}/write?db={db}&precision=s", body=line.encode(), timeout=TIMEOUT
    )
    assert resp.status == 204, resp.data

    resp = urllib3.request(
        "GET",
        f"{base_url}/query",
        fields={"db": db, "epoch": "s", "q": "SELECT value, quality, meter FROM reading"},
        timeout=TIMEOUT,
    )
    assert resp.status == 200
    series = json.loads(resp.data)["results"][0]["series"][0]
    assert series["columns"] == ["time", "value", "quality", "meter"]
    assert series["values"] == [[1700000000, 12.5, "good", "m1"]]


def test_fresh_influx_db_is_empty_and_unique(fresh_influx_db, influxdb_server) -> None:
    assert fresh_influx_db.base_url == influxdb_server.url
    shown = servers.influx_query(influxdb_server.url, "SHOW DATABASES")
    names = [row[0] for row in shown["results"][0]["series"][0]["values"]]
    assert fresh_influx_db.db_name in names
    measurements = servers.influx_query(
        influxdb_server.url, "SHOW MEASUREMENTS", db=fresh_influx_db.db_name
    )
    assert "series" not in measurements["results"][0]


def test_two_influxd_instances_do_not_clash(influxdb_server: InfluxServer, tmp_path) -> None:
    """influxd also listens for RPC (default 8088): the script moves it to a free port."""
    second = servers.start_influxdb(tmp_path / "second-influxd")
    try:
        assert second.port != influxdb_server.port
        for server in (influxdb_server, second):
            assert urllib3.request("GET", f"{server.url}/ping", timeout=TIMEOUT).status == 204
    finally:
        servers.stop_server(second)
    assert not second.is_running()


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_select_1(postgres_server: PostgresServer) -> None:
    assert postgres_server.url == (
        f"postgresql+psycopg://meterflow@127.0.0.1:{postgres_server.port}/meterflow"
    )
    with psycopg.connect(postgres_server.dsn, connect_timeout=10) as conn:
        row = conn.execute("select 1, current_user, current_database()").fetchone()
    assert row == (1, "meterflow", "meterflow")


def test_fresh_postgres_url_is_an_empty_database_owned_by_meterflow(
    fresh_postgres_url: str, postgres_server: PostgresServer
) -> None:
    assert fresh_postgres_url.startswith(
        f"postgresql+psycopg://meterflow@127.0.0.1:{postgres_server.port}/mf_"
    )
    dsn = fresh_postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        tables = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("create table t (id int primary key)")  # the owner may create tables
        conn.execute("insert into t values (1)")
        assert conn.execute("select count(*) from t").fetchone() == (1,)


# --------------------------------------------------------------------------- skip / CI


def test_missing_server_skips_or_fails_under_ci(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(servers, "find_mosquitto", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"mosquitto is not installed.*install"):
        servers.start_mosquitto(tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"CI=true and mosquitto is not installed"):
        servers.start_mosquitto(tmp_path)
