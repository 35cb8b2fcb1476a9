"""Poison isolation and outages: a message whose data the store refuses is found by halving
the batch and dead-lettered alone; a store that does not answer is an outage (retried, never
acknowledged) up to the worker's last attempt; a restart brings no stall back."""

from __future__ import annotations

import socket
import sqlite3
import time

import pytest
from sqlalchemy import select

from cloud.ingest.models import DeadLetter, IngestStream
from cloud.ingest.service import IngestService, Outcome, StoreUnavailable
from cloud.ingest.worker import IngestWorker
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.influx import InfluxSeriesStore
from cloud.series.sqlite import SqliteSeriesStore
from edge.wire import sign_compact
from tests.support.factories import envelope, reading, received
from tests.support.mqtt_clients import publish_raw

TOPIC = "mf/v1/s1/gw1/up/readings"


def poisoned_store(path) -> SqliteSeriesStore:  # type: ignore[no-untyped-def]
    """A real SQLite store that refuses any point of meter POISON (a constraint of its own,
    as a store refuses a value out of its column's range)."""
    store = SqliteSeriesStore(path)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON points WHEN NEW.meter = 'POISON'"
            " BEGIN SELECT RAISE(ABORT, 'meter POISON is refused'); END"
        )
    return store


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def registry(tmp_path, identity):  # type: ignore[no-untyped-def]
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with sessions.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    return sessions


def letters(registry) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with registry() as s:
        return [tuple(r) for r in s.execute(select(DeadLetter.reason, DeadLetter.detail))]


def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.05)


def test_the_message_at_fault_is_found_and_dead_lettered_alone(tmp_path, registry, identity):
    service = IngestService(registry, poisoned_store(tmp_path / "series.sqlite"), now=received)
    bodies = [
        envelope(identity, seq, [reading(meter="POISON" if seq == 7 else "M1", minute=seq)])
        for seq in range(20)
    ]
    results = service.handle_batch([(TOPIC, b) for b in bodies])
    assert [r.outcome for r in results] == [Outcome.STORED] * 7 + [Outcome.REJECTED] + [
        Outcome.STORED
    ] * 12
    assert results[7].reason == "store_refused" and "meter POISON is refused" in results[7].detail
    assert service.stats.isolations >= 4  # 20 → 10 → 5 → 3/2 → 1 …
    ((reason, detail),) = letters(registry)
    assert reason == "store_refused" and "POISON" in detail
    assert len(service.store.read("M1", "energy_import", *_span(), site="s1")) == 19
    # Seq 7 is not taken for seen: the filter's floor stops there.
    with registry() as s:
        row = s.get(IngestStream, ("gw1", identity.kid))
    assert (row.floor, row.ranges.startswith("[[8,19,")) == (7, True)


def _span():  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from tests.support.factories import T0

    return T0, T0 + timedelta(days=1)


def test_a_store_that_does_not_answer_is_an_outage_not_a_dead_letter(registry, identity):
    store = InfluxSeriesStore(f"http://127.0.0.1:{closed_port()}", "nowhere", timeout_s=2)
    service = IngestService(registry, store, now=received)
    with pytest.raises(StoreUnavailable, match="series store"):
        service.handle_batch([(TOPIC, envelope(identity, seq)) for seq in range(5)])
    assert letters(registry) == [] and service.stats.rejected == 0
    with registry() as s:
        assert s.scalars(select(IngestStream)).all() == []


def test_the_worker_gives_up_after_its_last_attempt_and_a_restart_does_not_stall(
    tmp_path, registry, identity, mosquitto_server
):
    dead = InfluxSeriesStore(f"http://127.0.0.1:{closed_port()}", "nowhere", timeout_s=2)
    service = IngestService(registry, dead, now=received)
    worker = IngestWorker(
        service,
        mosquitto_server.url,
        client_id="poison-giveup",
        retry_s=0.05,
        max_retry_s=0.1,
        max_attempts=3,
    )
    worker.start()
    try:
        publish_raw(mosquitto_server.url, TOPIC, [envelope(identity, 0)])
        wait_for(lambda: service.stats.rejected == 1, 30, "dead-lettered after 3 attempts")
    finally:
        worker.stop()
    ((reason, detail),) = letters(registry)
    assert reason == "store_failed" and "last attempt" in detail
    # The same session again, with a store that works and one poisoned message waiting.
    store = poisoned_store(tmp_path / "series.sqlite")
    service = IngestService(registry, store, now=received)
    publish_raw(
        mosquitto_server.url,
        TOPIC,
        [envelope(identity, 1, [reading(meter="POISON", minute=1)]), envelope(identity, 2)],
    )
    for round_ in range(2):  # the poisoned one is settled once, then never comes back
        worker = IngestWorker(service, mosquitto_server.url, client_id="poison-giveup")
        worker.start()
        try:
            if round_ == 0:
                wait_for(lambda: service.stats.stored == 1, 30, "the good one stored")
                wait_for(lambda: service.stats.rejected == 1, 30, "the poisoned one refused")
            else:
                publish_raw(mosquitto_server.url, TOPIC, [envelope(identity, 3)])
                wait_for(lambda: service.stats.stored == 2, 30, "ingest goes on")
        finally:
            worker.stop()
    assert service.stats.rejected == 1 and service.stats.duplicates == 0
    assert sorted(r for r, _ in letters(registry)) == ["store_failed", "store_refused"]


def test_a_nul_in_the_key_id_on_postgres_is_one_dead_letter_not_a_stall(
    tmp_path, fresh_postgres_url, identity
):
    registry = open_registry(fresh_postgres_url)
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    service = IngestService(registry, SqliteSeriesStore(tmp_path / "s.sqlite"), now=received)
    forged = sign_compact(
        {"alg": "EdDSA", "kid": "evil\x00kid"}, b'{"schema":"mf.readings/1"}', identity.private_key
    )
    results = service.handle_batch(
        [(TOPIC, envelope(identity, 0)), (TOPIC, forged), (TOPIC, envelope(identity, 1))]
    )
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.REJECTED, Outcome.STORED]
    assert results[1].reason == "unknown_key"  # not even looked up
    ((reason, detail),) = letters(registry)
    assert reason == results[1].reason and "\x00" not in detail
