"""Chaos on real mosquitto, PostgreSQL and influxd: three gateways on two sites, with
overlapping meter ids, send about 10,000 good readings interleaved with every kind of bad
envelope (another site's meter too), replays among them, to two
``meterflow cloud ingest`` processes on one shared subscription; one process is SIGKILLed and
restarted twice. Every good reading is stored exactly once under its site, every bad envelope
is dead-lettered exactly once with its reason, nothing else is stored, and ingest never
stalls (everything settles within a bound)."""

from __future__ import annotations

import hashlib
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
from cloud.registry.service import register_gateway, register_meter
from cloud.series.base import to_ns
from cloud.series.influx import InfluxSeriesStore
from edge.keys import GatewayIdentity
from edge.wire import ClockState, Quality, Reading, ReadingsPayload, seal
from tests.ingest.hostile import hostile_envelopes, raw_payload, signed_raw
from tests.ingest.test_ingest_workers import WorkerProcess, wait_for
from tests.support.mqtt_clients import publish_raw

#: (site, gateway, meter id prefix): gw1 of s1 and gw3 of s2 read meters of the same ids
#: (M00..M19), kept apart by site in the store (decision 0015).
GATEWAYS = [("s1", "gw1", "M"), ("s1", "gw2", "N"), ("s2", "gw3", "M")]
ENVELOPES, METERS = 170, 20  # per gateway: 3 × 170 × 20 = 10,200 good readings
#: Each site also owns "M1" (the hostile envelopes' meter) and a meter only it has.
OWN_METER = {"s1": "S1-ONLY", "s2": "S2-ONLY"}


def replay_digest(topic: str, body: bytes) -> str:
    """The dead-letter digest of a message (cloud.ingest.letters.make_letter)."""
    return hashlib.sha256(topic.encode() + b"\n" + body).hexdigest()


def value(site: str, k: int, seq: int) -> Decimal:
    """Meter k's register at envelope seq: different per site, so a mix-up shows."""
    return Decimal(1000 * k + seq) + (Decimal("0.25") if site == "s1" else Decimal("0.75"))


def good_envelopes(identity: GatewayIdentity, site: str, gateway: str, prefix: str, base: datetime):  # type: ignore[no-untyped-def]
    """A gateway's good envelopes: each reads every meter's cumulative energy once."""
    out = []
    for seq in range(ENVELOPES):
        at = base + timedelta(seconds=20 * seq)
        readings = [
            Reading(
                meter=f"{prefix}{k:02d}",
                quantity="energy_import",
                value=value(site, k, seq),
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
    replayed: set[str] = set()  # digests of the replayed (good) envelopes
    good_digests: set[str] = set()
    identities = {}
    for site, gateway, prefix in GATEWAYS:
        identity = GatewayIdentity(Ed25519PrivateKey.generate())
        identities[gateway] = identity
        with registry.begin() as session:
            register_gateway(session, site, gateway, identity.public_key)
            for meter in [f"{prefix}{k:02d}" for k in range(METERS)] + ["M1", OWN_METER[site]]:
                register_meter(session, site, meter, protocol="dlt645", address="000000000001")
        good = good_envelopes(identity, site, gateway, prefix, base)
        topic = f"mf/v1/{site}/{gateway}/up/readings"
        good_digests.update(replay_digest(topic, b) for b in good)
        for seq in range(ENVELOPES):
            for k in range(METERS):
                at = to_ns(base + timedelta(seconds=20 * seq))
                expected_points.add((site, f"{prefix}{k:02d}", at, float(value(site, k, seq))))
        bad = hostile_envelopes(
            identity, stranger, good[0], 10_000, base + timedelta(hours=1), gateway
        )
        other = OWN_METER["s2" if site == "s1" else "s1"]  # the other site's meter
        foreign = raw_payload(identity, 20_000, gateway)
        foreign["readings"][0]["meter"] = other
        foreign["readings"][0]["read_at"] = foreign["sent_at"] = (
            (base + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
        )
        bad.append(("another site's meter", signed_raw(identity, foreign), "meter_not_owned"))
        expected_letters.update((gateway, reason) for _, _, reason in bad)
        replays = [good[i] for i in rnd.sample(range(ENVELOPES), 15)]  # duplicates
        replayed.update(replay_digest(topic, b) for b in replays)
        expected_letters[(gateway, "duplicate")] += len(replays)
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
        rows = s.execute(
            select(DeadLetter.gateway_id, DeadLetter.reason, DeadLetter.detail, DeadLetter.digest)
        ).all()
    # A killed worker's unacknowledged good envelopes come back as duplicates too: their
    # letters are kept (once each) beside the replays'; the replays are all there, once.
    redelivered = [r for r in rows if r.reason == "duplicate" and r.digest not in replayed]
    assert {r.digest for r in redelivered} <= good_digests
    letters = [
        (gw, reason, detail)
        for gw, reason, detail, digest in rows
        if digest in replayed or reason != "duplicate"
    ]
    assert replayed <= {r.digest for r in rows if r.reason == "duplicate"}
    with registry() as s:
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
