"""Ownership: a site's gateways report only the site's meters; two sites' equal ids never mix.

Through the real path: envelopes published to mosquitto, the ingest worker, the registry on
SQLite or PostgreSQL and the series in SQLite or the real influxd.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.ingest.models import DeadLetter
from cloud.ingest.ownership import MeterOwnership
from cloud.ingest.service import IngestService, Outcome, RejectReason
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import ensure_site, register_gateway, register_meter
from cloud.series.influx import InfluxSeriesStore
from cloud.series.sqlite import SqliteSeriesStore
from edge.keys import GatewayIdentity
from tests.ingest.test_ingest_mqtt import wait_for
from tests.support.factories import T0, envelope, reading, received
from tests.support.mqtt_clients import publish_raw

Q = "energy_import"


@pytest.fixture(params=["sqlite", "influxdb", "postgres"])
def service(request, tmp_path) -> Iterator[IngestService]:
    registry_url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    if request.param == "postgres":
        registry_url = request.getfixturevalue("fresh_postgres_url")
    if request.param == "influxdb":
        store = InfluxSeriesStore(*request.getfixturevalue("fresh_influx_db"))
    else:
        store = SqliteSeriesStore(tmp_path / "series.sqlite")
    registry = open_registry(registry_url)
    yield IngestService(registry, store, now=received)
    store.close()
    registry.kw["bind"].dispose()


def _values(service: IngestService, site: str, meter: str) -> list[float]:
    frame = service.store.read(meter, Q, T0, T0 + timedelta(days=1), site=site)
    return frame.values.tolist()


def test_two_sites_with_the_same_meter_ids_keep_their_own_readings(
    service, mosquitto_server, request
):
    gw_a = GatewayIdentity(Ed25519PrivateKey.generate())
    gw_b = GatewayIdentity(Ed25519PrivateKey.generate())
    with service.registry.begin() as session:
        register_gateway(session, "site-a", "gw-a", gw_a.public_key)
        register_gateway(session, "site-b", "gw-b", gw_b.public_key)
        for meter in ("MAIN", "U101"):  # the README's ids, in both sites but U101 of B
            register_meter(session, "site-a", meter, protocol="dlt645", address="1")
        register_meter(session, "site-b", "MAIN", protocol="dlt645", address="1")
        register_meter(session, "site-b", "U102", protocol="dlt645", address="2")
    topic_a, topic_b = "mf/v1/site-a/gw-a/up/readings", "mf/v1/site-b/gw-b/up/readings"

    def env(identity, gateway, seq, rows):
        return envelope(identity, seq, [reading(m, minute, v) for m, minute, v in rows], gateway)

    # Snapshot reads at the same instants: A's MAIN at 500, B's at 1; then B's gateway reports
    # A's U101 (which B does not own), mixed with its own MAIN: the envelope is refused whole.
    a0 = env(gw_a, "gw-a", 0, [("MAIN", 0, "500.00"), ("U101", 0, "20.00")])
    b0 = env(gw_b, "gw-b", 0, [("MAIN", 0, "1.00"), ("U102", 0, "3.00")])
    b1 = env(gw_b, "gw-b", 1, [("MAIN", 60, "1.50"), ("U101", 60, "999999")])
    a1 = env(gw_a, "gw-a", 1, [("MAIN", 60, "501.00"), ("U101", 60, "21.00")])
    b2 = env(gw_b, "gw-b", 2, [("MAIN", 120, "2.00")])
    worker = IngestWorker(service, mosquitto_server.url, client_id=f"ingest-{request.node.name}")
    worker.start()
    try:
        publish_raw(mosquitto_server.url, topic_a, [a0])
        publish_raw(mosquitto_server.url, topic_b, [b0, b1])
        publish_raw(mosquitto_server.url, topic_a, [a1])
        publish_raw(mosquitto_server.url, topic_b, [b2])
        wait_for(lambda: service.stats.stored + service.stats.rejected == 5)
    finally:
        worker.stop()

    assert (service.stats.stored, service.stats.rejected) == (4, 1)
    assert dict(service.stats.reasons) == {"meter_not_owned": 1}
    assert _values(service, "site-a", "MAIN") == [500.0, 501.0]
    assert _values(service, "site-a", "U101") == [20.0, 21.0]
    assert _values(service, "site-b", "MAIN") == [1.0, 2.0]  # b1's 1.50 was not stored
    assert _values(service, "site-b", "U102") == [3.0]
    assert _values(service, "site-b", "U101") == []
    # Validation compares each site's meter with its own history: no rollover or decrease.
    frame = service.store.read("MAIN", Q, T0, T0 + timedelta(days=1), site="site-a")
    assert frame.quality.tolist() == ["good", "good"]
    with service.registry() as session:
        letters = session.execute(
            select(DeadLetter.reason, DeadLetter.topic, DeadLetter.detail, DeadLetter.payload)
        ).all()
    assert [(r, t, p) for r, t, _d, p in letters] == [("meter_not_owned", topic_b, b1)]
    assert "site-b has no meter 'U101'" in letters[0][2] and "gw-b" in letters[0][2]


def test_a_site_without_registered_meters_is_not_checked_until_one_is(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    store = SqliteSeriesStore(tmp_path / "series.sqlite")
    gw = GatewayIdentity(Ed25519PrivateKey.generate())
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", gw.public_key)
    clock = [0.0]
    service = IngestService(registry, store, clock=lambda: clock[0], now=received)
    topic = "mf/v1/s1/gw1/up/readings"
    # Commissioned before the site file: no meter of s1 is registered, any id is accepted.
    assert service.handle(topic, envelope(gw, 0, [reading("ANY", 0)])).outcome is Outcome.STORED
    with registry.begin() as session:
        register_meter(session, "s1", "M1", protocol="dlt645", address="1")
    clock[0] += 31.0  # past the cache: s1 now has meters and is checked
    refused = service.handle(topic, envelope(gw, 1, [reading("ANY", 1)]))
    assert (refused.outcome, refused.reason) == (Outcome.REJECTED, RejectReason.METER_NOT_OWNED)
    assert service.handle(topic, envelope(gw, 2, [reading("M1", 2)])).outcome is Outcome.STORED
    # A meter registered now is accepted at once: a miss reads the site's meters again.
    with registry.begin() as session:
        register_meter(session, "s1", "M2", protocol="dlt645", address="2")
    clock[0] += 1.0
    assert service.handle(topic, envelope(gw, 3, [reading("M2", 3)])).outcome is Outcome.STORED
    assert _values(service, "s1", "ANY") == [100.25]
    store.close()
    registry.kw["bind"].dispose()


def test_foreign_ids_cost_at_most_one_registry_read_per_site_and_second(tmp_path):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.begin() as session:
        ensure_site(session, "s1")
        register_meter(session, "s1", "M1", protocol="dlt645", address="1")
    reads = []
    counted = registry.__class__(registry.kw["bind"])
    clock = [0.0]

    def counting():  # type: ignore[no-untyped-def]
        reads.append(clock[0])
        return counted()

    ownership = MeterOwnership(counting, clock=lambda: clock[0])  # type: ignore[arg-type]
    for i in range(100):
        clock[0] = i * 0.01  # 100 foreign ids within one second
        assert ownership.not_owned("s1", [f"X{i}", "M1"]) == [f"X{i}"]
    assert ownership.not_owned("s1", ["M1"]) == []
    assert len(reads) == 1
    registry.kw["bind"].dispose()
