"""Dead letters: quotas per gateway and in total (rows, bytes), one letter per distinct
message, purge after an age (worker upkeep and CLI), counters and CLI stats."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cloud.ingest.letters import LetterQuota
from cloud.ingest.models import DeadLetter
from cloud.ingest.service import IngestService
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.sqlite import SqliteSeriesStore
from meterflow.cli import app
from tests.support.factories import RECEIVED, envelope, reading, received


def junk(n: int, size: int = 100) -> bytes:
    return f"junk {n} ".encode().ljust(size, b"x")


@pytest.fixture()
def registry(tmp_path, identity):  # type: ignore[no-untyped-def]
    sessions = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with sessions.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    return sessions


def kept(registry) -> list[tuple[str | None, int]]:  # type: ignore[no-untyped-def]
    with registry() as s:
        return [
            tuple(r)
            for r in s.execute(
                select(DeadLetter.gateway_id, DeadLetter.size).order_by(DeadLetter.id)
            )
        ]


def test_quotas_per_gateway_and_in_total(tmp_path, registry):
    quota = LetterQuota(max_rows=8, max_bytes=10_000, gateway_rows=5, gateway_bytes=350)
    service = IngestService(
        registry, SqliteSeriesStore(tmp_path / "s.sqlite"), now=received, quota=quota
    )
    flood = [("mf/v1/s1/gwA/up/readings", junk(n)) for n in range(7)]
    service.handle_batch(flood)
    # gwA: 3 letters with payload (300 bytes), a 4th and 5th without (byte quota), then none.
    assert kept(registry) == [("gwA", 100)] * 3 + [("gwA", 0)] * 2
    assert (service.stats.payloads_dropped, service.stats.letters_dropped) == (2, 2)
    assert service.stats.reasons["malformed"] == 7  # every message is counted and acked
    service.handle_batch([("mf/v1/s1/gwB/up/readings", junk(n)) for n in range(10, 16)])
    assert len(kept(registry)) == 8  # the global row quota
    assert service.stats.letters_dropped == 2 + 3


def test_one_letter_per_distinct_message_however_often_it_comes(tmp_path, registry, identity):
    service = IngestService(registry, SqliteSeriesStore(tmp_path / "s.sqlite"), now=received)
    topic = "mf/v1/s1/gw1/up/readings"
    bad = envelope(identity, 1, [reading(value="-5")])
    for _ in range(3):
        assert service.handle_batch([(topic, bad), (topic, bad)])[1].reason == "negative_register"
    with registry() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 1
    assert service.stats.reasons["negative_register"] == 6


def test_letters_are_purged_after_their_age_by_the_worker_and_the_cli(
    tmp_path, registry, monkeypatch
):
    clock = [RECEIVED]
    service = IngestService(
        registry,
        SqliteSeriesStore(tmp_path / "s.sqlite"),
        now=lambda: clock[0],
        quota=LetterQuota(max_age=timedelta(days=30)),
    )
    service.handle_batch([("mf/v1/s1/gw1/up/readings", junk(1))])
    clock[0] = RECEIVED + timedelta(days=10)
    service.handle_batch([("mf/v1/s1/gw1/up/readings", junk(2))])
    clock[0] = RECEIVED + timedelta(days=35)
    assert service.maintain()["letters"] == 1 and service.stats.purged == 1
    assert len(kept(registry)) == 1

    monkeypatch.setenv("MF_DB_URL", f"sqlite:///{tmp_path / 'registry.sqlite'}")
    runner = CliRunner()
    out = runner.invoke(app, ["cloud", "dead-letters", "stats"])
    assert out.exit_code == 0, out.output
    stats = json.loads(out.output)
    assert stats["rows"] == 1 and stats["by_reason"] == {"malformed": {"rows": 1, "bytes": 100}}
    out = runner.invoke(app, ["cloud", "dead-letters", "purge", "--older-than-days", "36500"])
    assert out.exit_code == 0 and json.loads(out.output)["purged"] == 0
    out = runner.invoke(app, ["cloud", "dead-letters", "purge", "--older-than-days", "0"])
    assert out.exit_code == 0 and json.loads(out.output)["purged"] == 1
    out = runner.invoke(app, ["cloud", "dead-letters", "purge", "--older-than-days", "-1"])
    assert out.exit_code == 2 and "expected a number of days >= 0" in out.output


def test_give_up_dead_letters_a_prepared_batch_as_store_failed(tmp_path, registry, identity):
    service = IngestService(registry, SqliteSeriesStore(tmp_path / "s.sqlite"), now=received)
    topic = "mf/v1/s1/gw1/up/readings"
    prepared = service.prepare([(topic, envelope(identity, 0)), (topic, junk(3))])
    results = service.give_up(prepared, "OSError: disk full")
    assert [r.reason for r in results] == ["store_failed", "malformed"]
    assert "disk full" in results[0].detail
    assert sorted(g for g, _ in kept(registry)) == ["gw1", "gw1"]
