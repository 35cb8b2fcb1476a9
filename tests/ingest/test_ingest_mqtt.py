"""Ingest on real mosquitto, with each series store and each registry database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.ingest.models import DeadLetter
from cloud.ingest.service import IngestService
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.influx import InfluxSeriesStore
from cloud.series.sqlite import SqliteSeriesStore
from edge.keys import GatewayIdentity
from tests.support.factories import T0, envelope, reading, received
from tests.support.mqtt_clients import publish_raw

TOPIC = "mf/v1/s1/gw1/up/readings"


@pytest.fixture(params=["sqlite", "influxdb", "postgres"])
def service(request, tmp_path) -> Iterator[IngestService]:
    """An IngestService: SQLite series + SQLite registry, InfluxDB series on the real influxd,
    or the registry on the real PostgreSQL."""
    registry_url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    if request.param == "postgres":
        registry_url = request.getfixturevalue("fresh_postgres_url")
    if request.param == "influxdb":
        base_url, db_name = request.getfixturevalue("fresh_influx_db")
        store = InfluxSeriesStore(base_url, db_name)
    else:
        store = SqliteSeriesStore(tmp_path / "series.sqlite")
    registry = open_registry(registry_url)
    yield IngestService(registry, store, now=received)
    store.close()
    registry.kw["bind"].dispose()


def wait_for(predicate, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.05)


def flip_one_payload_byte(env: bytes) -> bytes:
    """The same envelope with one character of its payload segment changed."""
    header, body, sig = env.split(b".")
    i = len(body) // 2
    body = body[:i] + (b"B" if body[i : i + 1] == b"A" else b"A") + body[i + 1 :]
    return b".".join([header, body, sig])


def test_forged_unknown_and_replayed_envelopes_never_reach_the_store(
    service, mosquitto_server, request
):
    gateway = GatewayIdentity(Ed25519PrivateKey.generate())
    stranger = GatewayIdentity(Ed25519PrivateKey.generate())
    with service.registry.begin() as session:
        register_gateway(session, "s1", "gw1", gateway.public_key)
    worker = IngestWorker(service, mosquitto_server.url, client_id=f"ingest-{request.node.name}")
    worker.start()
    try:
        genuine0 = envelope(gateway, 0, [reading(minute=m, value=f"{100 + m}.5") for m in range(3)])
        genuine1 = envelope(gateway, 1, [reading(minute=10, value="110.25")])
        forged = flip_one_payload_byte(envelope(gateway, 2, [reading(minute=20, value="999")]))
        unknown = envelope(stranger, 3, [reading(minute=30, value="777")])
        publish_raw(mosquitto_server.url, TOPIC, [genuine0, forged, unknown, genuine0, genuine1])
        wait_for(
            lambda: (
                sum((service.stats.stored, service.stats.duplicates, service.stats.rejected)) == 5
            )
        )
    finally:
        worker.stop()

    stats = service.stats
    assert (stats.stored, stats.duplicates, stats.rejected) == (2, 1, 2)
    assert dict(stats.reasons) == {"bad_signature": 1, "unknown_key": 1}
    assert stats.readings_stored == 4
    frame = service.store.read("M1", "energy_import", T0, T0 + timedelta(hours=1), site="s1")
    assert frame.values.tolist() == [100.5, 101.5, 102.5, 110.25]
    assert frame.quality.tolist() == ["good"] * 4
    with service.registry() as session:
        letters = session.execute(select(DeadLetter.reason, DeadLetter.payload)).all()
    # the replay is kept as a letter too, once, without its payload (its readings are stored)
    assert sorted(reason for reason, _ in letters) == ["bad_signature", "duplicate", "unknown_key"]
    assert {payload for _, payload in letters} == {forged, unknown, b""}
