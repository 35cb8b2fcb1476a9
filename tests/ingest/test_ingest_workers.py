"""Ingest workers as real processes on real mosquitto, PostgreSQL and influxd: a shared
subscription split between two workers, one of them SIGKILLed mid-stream; bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.api_jws import PyJWS
from sqlalchemy import func, select

from cloud.ingest.models import DeadLetter, IngestStream
from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.influx import InfluxSeriesStore
from cloud.series.sqlite import SqliteSeriesStore
from edge.keys import GatewayIdentity
from edge.wire.mqtt import BrokerAddress
from tests.support.factories import envelope, reading, received
from tests.support.mqtt_clients import publish_raw

TOPIC = "mf/v1/s1/gw1/up/readings"


def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.1)


class WorkerProcess:
    """``meterflow cloud ingest`` in its own process, its log in a file."""

    def __init__(
        self, client_id: str, env: dict[str, str], log_dir: Path, share_group: str = "ingest"
    ) -> None:
        self.client_id = client_id
        self.share_group = share_group
        self.env = env
        self.log = log_dir / f"{client_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "meterflow",
                "cloud",
                "ingest",
                "--share-group",
                self.share_group,
                "--client-id",
                self.client_id,
            ],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        marker = self.log.read_text().count("subscribed to")
        wait_for(
            lambda: (
                self.log.read_text().count("subscribed to") > marker or self.proc.poll() is not None
            ),
            30,
            f"{self.client_id} subscribed",
        )
        assert self.proc.poll() is None, self.log.read_text()[-2000:]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def forget_session(self) -> None:
        """End the worker's persistent session at the broker: an offline session keeps its
        share of a shared subscription, and the broker would go on queueing messages for
        it (later tests on the same broker would miss them)."""
        broker = BrokerAddress.parse(self.env["MF_MQTT_URL"])
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True
        )
        connected = threading.Event()
        client.on_connect = lambda *_args: connected.set()
        client.connect(broker.host, broker.port)
        client.loop_start()
        assert connected.wait(10), f"{self.client_id}: no CONNACK"
        client.disconnect()
        client.loop_stop()


def test_two_workers_share_the_stream_and_a_killed_one_loses_nothing(
    tmp_path, mosquitto_server, fresh_postgres_url, fresh_influx_db
):
    base_url, db_name = fresh_influx_db
    gateway = GatewayIdentity(Ed25519PrivateKey.generate())
    registry = open_registry(fresh_postgres_url)
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", gateway.public_key)
    env = {
        **os.environ,
        "MF_MQTT_URL": mosquitto_server.url,
        "MF_DB_URL": fresh_postgres_url,
        "MF_SERIES_BACKEND": "influxdb",
        "MF_INFLUX_URL": base_url,
        "MF_INFLUX_BUCKET": db_name,
        "MF_DATA_DIR": str(tmp_path),
        "MF_INGEST_MAX_AGE_DAYS": "3650",  # the factories' readings are of November 2026
    }
    workers = [WorkerProcess(f"ingest-{n}", env, tmp_path) for n in (1, 2)]
    envelopes, per_envelope = 240, 5
    bodies = [
        envelope(
            gateway,
            seq,
            [
                reading(meter=f"M{k}", minute=seq, value=f"{seq + 100}.5")
                for k in range(per_envelope)
            ],
        )
        for seq in range(envelopes)
    ]
    try:
        for w in workers:
            w.start()
        publish_raw(mosquitto_server.url, TOPIC, bodies[:80])
        workers[0].kill()  # mid-stream: it holds unacknowledged messages, maybe half-stored
        publish_raw(mosquitto_server.url, TOPIC, bodies[80:160])
        workers[0].start()  # the same client id: its persistent session is delivered again
        publish_raw(mosquitto_server.url, TOPIC, bodies[160:])

        def seen() -> int:
            with registry() as s:
                return s.scalar(select(func.coalesce(func.sum(IngestStream.floor), 0)))

        try:
            wait_for(lambda: seen() == envelopes, 60, "every envelope recorded")
        except AssertionError:
            with registry() as s:
                state = s.execute(select(IngestStream.floor, IngestStream.ranges)).all()
            raise AssertionError(f"not every envelope recorded within 60 s: {state}") from None
    finally:
        for w in workers:
            w.stop()
            w.forget_session()

    logs = {w.client_id: w.log.read_text() for w in workers}
    with registry() as s:
        ledger = s.execute(select(IngestStream.kid, IngestStream.floor, IngestStream.ranges)).all()
        dead = s.scalar(select(func.count()).select_from(DeadLetter))
    # Every seq 0..239 recorded under the gateway's key: one floor, no open range.
    assert ledger == [(gateway.kid, envelopes, "[]")] and dead == 0
    store = InfluxSeriesStore(base_url, db_name)
    (count,) = [
        row[1]
        for r in store.query("SELECT count(value) FROM reading")
        for s in r["series"]
        for row in s["values"]
    ]
    assert count == envelopes * per_envelope
    # Both workers took part (the shared subscription split the stream).
    assert all("subscribed to $share/ingest/" in text for text in logs.values())


def test_bad_input_is_rejected_with_a_reason_and_the_worker_keeps_running(
    tmp_path, mosquitto_server
):
    gateway = GatewayIdentity(Ed25519PrivateKey.generate())
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", gateway.public_key)
    service = IngestService(registry, SqliteSeriesStore(tmp_path / "series.sqlite"), now=received)
    worker = IngestWorker(service, mosquitto_server.url, client_id="bad-input")
    worker.start()
    good = envelope(gateway, 1, [reading(minute=1)])
    # Signed by the gateway's own key, but not a readings payload of schema 1.
    header, body, sig = envelope(gateway, 2).split(b".")
    wrong_schema = (
        PyJWS()
        .encode(
            b'{"schema":"mf.readings/9","gateway":"gw1"}',
            gateway.private_key,
            algorithm="EdDSA",
            headers={"kid": gateway.kid},
        )
        .encode()
    )
    bad = {
        "truncated": good[: len(good) // 2],
        "oversized": b"x" * (300 * 1024),
        "wrong_schema": wrong_schema,
        "bad_signature": b".".join(
            [header, body, sig[:-4] + (b"AAAA" if sig[-4:] != b"AAAA" else b"BBBB")]
        ),
    }
    try:
        publish_raw(
            mosquitto_server.url,
            TOPIC,
            [good, *bad.values(), good, envelope(gateway, 4, [reading(minute=4)])],
        )
        wait_for(
            lambda: service.stats.stored + service.stats.rejected + service.stats.duplicates == 7,
            20,
            "all seven handled",
        )
    finally:
        worker.stop()
    assert (service.stats.stored, service.stats.duplicates, service.stats.rejected) == (2, 1, 4)
    assert dict(service.stats.reasons) == {"malformed": 2, "oversized": 1, "bad_signature": 1}
    with registry() as s:
        letters = s.execute(select(DeadLetter.reason, DeadLetter.detail)).all()
    assert sorted(r for r, _ in letters) == [
        "bad_signature",
        "duplicate",
        "malformed",
        "malformed",
        "oversized",
    ]
    assert all(detail for _, detail in letters)  # each says why
