"""Chaos on real mosquitto, PostgreSQL and influxd: three gateways on two sites send about
10,000 good readings interleaved with every kind of bad envelope, replays among them, to two
``meterflow cloud ingest`` processes on one shared subscription; one process is SIGKILLed and
restarted twice. Every good reading is stored exactly once under its site, every bad envelope
is dead-lettered exactly once with its reason, nothing else is stored, and ingest never
stalls (everything settles within a bound)."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.ingest.models import DeadLetter, IngestStream
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.base import to_ns
from cloud.series.influx import InfluxSeriesStore
from edge.keys import GatewayIdentity
from edge.wire import ClockState, Quality, Reading, ReadingsPayload, seal
from tests.ingest.hostile import hostile_envelopes
from tests.ingest.test_ingest_workers import WorkerProcess, wait_for
from tests.support.mqtt_clients import publish_raw

#: (site, gateway, meter id prefix). H2 (meter ownership, site-keyed series) adds gateways
#: whose meter ids overlap another site's (e.g. both sites' "MAIN") once series are keyed by
#: site; until then each gateway's meters carry its own prefix.
GATEWAYS = [("s1", "gw1", "A"), ("s1", "gw2", "B"), ("s2", "gw3", "C")]
ENVELOPES, METERS = 170, 20  # per gateway: 3 × 170 × 20 = 10,200 good readings
#: Bad envelopes H2 adds to each gateway's list later, with their reasons:
#: ("another site's meter", <a reading of s2's meter from gw1>, "meter_not_owned").
LATER_CASES: list[tuple[str, bytes, str]] = []


def good_envelopes(identity: GatewayIdentity, gateway: str, prefix: str, base: datetime):
    """A gateway's good envelopes: each reads every meter's cumulative energy once."""
    out = []
    for seq in range(ENVELOPES):
        at = base + timedelta(seconds=20 * seq)
        readings = [
            Reading(
                meter=f"{prefix}{k:02d}",
                quantity="energy_import",
                value=Decimal(1000 * k + seq) + Decimal("0.25"),
                unit="kWh",
                read_at=at,
                quality=Quality.GOOD,
                round=f"r{seq}",
            )
            for k in range(METERS)
        ]
        payload = ReadingsPayload(
            gateway=gateway,
            kid=identity.kid,
            seq=seq,
            epoch=1,
            sent_at=at,
            clock=ClockState.SYNCED,
            readings=readings,
        )
        out.append(seal(payload, identity.private_key))
    return out


def test_chaos_every_good_reading_once_every_bad_envelope_once(
    tmp_path, mosquitto_server, fresh_postgres_url, fresh_influx_db
):
    started = time.monotonic()
    influx_url, db = fresh_influx_db
    registry = open_registry(fresh_postgres_url)
    rnd = random.Random(16)
    stranger = GatewayIdentity(Ed25519PrivateKey.generate())
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    streams: dict[str, list[bytes]] = {}  # topic → bodies in publishing order
    expected_points: set[tuple[str, str, int, float]] = set()
    expected_letters: Counter[tuple[str, str]] = Counter()  # (gateway, reason)
    identities = {}
    for site, gateway, prefix in GATEWAYS:
        identity = GatewayIdentity(Ed25519PrivateKey.generate())
        identities[gateway] = identity
        with registry.begin() as session:
            register_gateway(session, site, gateway, identity.public_key)
        good = good_envelopes(identity, gateway, prefix, base)
        for seq in range(ENVELOPES):
            for k in range(METERS):
                at = to_ns(base + timedelta(seconds=20 * seq))
                expected_points.add((site, f"{prefix}{k:02d}", at, 1000 * k + seq + 0.25))
        bad = hostile_envelopes(
            identity, stranger, good[0], 10_000, base + timedelta(hours=1), gateway
        )
        bad += LATER_CASES
        expected_letters.update((gateway, reason) for _, _, reason in bad)
        replays = [good[i] for i in rnd.sample(range(ENVELOPES), 15)]  # duplicates
        # The good ones in order; the bad and the replayed ones scattered among them.
        order: list[bytes] = list(good)
        for body in [b for _, b, _ in bad] + replays:
            order.insert(rnd.randint(1, len(order)), body)
        streams[f"mf/v1/{site}/{gateway}/up/readings"] = order

    env = {
        **os.environ,
        "MF_MQTT_URL": mosquitto_server.url,
        "MF_DB_URL": fresh_postgres_url,
        "MF_SERIES_BACKEND": "influxdb",
        "MF_INFLUX_URL": influx_url,
        "MF_INFLUX_BUCKET": db,
        "MF_DATA_DIR": str(tmp_path),
    }
    workers = [WorkerProcess(f"chaos-{n}", env, tmp_path, share_group="chaos") for n in (1, 2)]

    def publish_part(k: int, parts: int) -> None:
        for topic, bodies in streams.items():
            n = len(bodies)
            publish_raw(mosquitto_server.url, topic, bodies[k * n // parts : (k + 1) * n // parts])

    try:
        for w in workers:
            w.start()
        publish_part(0, 4)
        workers[0].kill()  # SIGKILL mid-stream, holding unacknowledged messages
        publish_part(1, 4)
        workers[0].start()  # restarted (the same persistent session)
        publish_part(2, 4)
        workers[0].kill()
        publish_part(3, 4)
        workers[0].start()  # restarted a second time

        def settled() -> bool:
            with registry() as s:
                floors = dict(s.execute(select(IngestStream.gateway_id, IngestStream.floor)).all())
                letters = len(s.execute(select(DeadLetter.id)).all())
            return floors == {gw: ENVELOPES for _, gw, _ in GATEWAYS} and letters >= sum(
                expected_letters.values()
            )

        wait_for(settled, 90, "every envelope settled (ingest never stalls)")
        time.sleep(1.0)  # anything still in flight would show up now
    finally:
        for w in workers:
            w.stop()
            w.forget_session()
    logs = "".join(w.log.read_text() for w in workers)

    with registry() as s:
        letters = s.execute(
            select(DeadLetter.gateway_id, DeadLetter.reason, DeadLetter.detail)
        ).all()
        streams_rows = s.execute(
            select(IngestStream.gateway_id, IngestStream.kid, IngestStream.ranges)
        ).all()
    # Every bad envelope dead-lettered exactly once, with its reason and a detail.
    assert Counter((gw, reason) for gw, reason, _ in letters) == expected_letters
    assert all(detail for _, _, detail in letters)
    assert sorted((gw, kid, r) for gw, kid, r in streams_rows) == sorted(
        (gw, identities[gw].kid, "[]") for _, gw, _ in GATEWAYS
    )
    # Every good reading stored once under its own site, and nothing else.
    store = InfluxSeriesStore(influx_url, db)
    stored = []
    for result in store.query("SELECT value FROM reading GROUP BY site, meter"):
        for series in result.get("series", []):
            tags = series["tags"]
            stored += [(tags["site"], tags["meter"], t, v) for t, v in series["values"]]
    assert len(stored) == len(expected_points) == 10_200
    assert set(stored) == expected_points
    failures = store.query("SELECT count(quality) FROM read_failure")
    assert not failures[0].get("series")
    # Both workers took part; no batch waited on a store that was there.
    assert "subscribed to $share/chaos/" in logs and "not stored" not in logs
    assert time.monotonic() - started < 120
