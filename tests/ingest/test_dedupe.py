"""The bounded duplicate filter: a gateway's 100,000 envelopes, live and backlog interleaved
and replayed in part, are each recorded exactly once, in state whose size does not grow with
the count; two workers racing on PostgreSQL settle every envelope once; a re-provisioned
gateway (new key, seq from 0) is accepted."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from cloud.gateways.revocation import REPLACED, revoke_keys
from cloud.ingest.dedupe import DEFAULT_MAX_RANGES, Deduper, StreamState
from cloud.ingest.models import IngestStream
from cloud.ingest.service import IngestService, Outcome
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.sqlite import SqliteSeriesStore
from edge.keys import GatewayIdentity
from tests.support.factories import RECEIVED, envelope, reading, received


def gateway_delivery(count: int, seed: int) -> list[int]:
    """The order in which ingest sees a gateway's seqs 0..count-1: live envelopes in rising
    order; an outage every ~1,000 envelopes leaves up to 1,500 in the outbox, which drain
    oldest first beside the live ones (0.75 backlog envelopes per live one); envelopes in
    flight swap places; a tenth is delivered again (redelivery after a crash, or a replay)."""
    rnd = random.Random(seed)
    order: list[int] = []
    backlog: list[int] = []
    seq = 0
    while seq < count or backlog:
        if seq < count and rnd.random() < 1 / 1000:  # an outage: the next envelopes wait
            n = rnd.randint(10, 1500)
            backlog += range(seq, min(seq + n, count))
            seq = min(seq + n, count)
            continue
        if seq < count:
            order.append(seq)  # live
            seq += 1
        drain = min(rnd.choice((0, 0, 1, 2)), len(backlog))
        order += backlog[:drain]  # the backlog drains, oldest first
        del backlog[:drain]
        if seq >= count and backlog:
            order += backlog
            backlog = []
    for i in range(0, len(order) - 1, 7):  # in flight: neighbours swap
        order[i], order[i + 1] = order[i + 1], order[i]
    replays = rnd.sample(range(len(order)), len(order) // 10)
    for at in sorted(replays, reverse=True):
        order.insert(at + rnd.randint(1, 500), order[at])
    return order


def test_stream_state_against_a_plain_set():
    rnd = random.Random(7)
    state, seen = StreamState(), set()
    for _ in range(20_000):
        seq = rnd.randint(0, 3000)
        assert state.add(seq, 0) == (seq not in seen)
        seen.add(seq)
        assert all(state.seen(s) == (s in seen) for s in rnd.sample(range(3100), 5))
    floor = 0
    while floor in seen:
        floor += 1
    assert state.floor == floor


def test_old_holes_close_and_too_many_holes_close_oldest_first():
    state = StreamState()
    for seq in (0, 1, 5, 9):
        state.add(seq, now_s=1000)
    assert (state.floor, [r[:2] for r in state.ranges]) == (2, [[5, 5], [9, 9]])
    state.prune(now_s=1000 + 99, max_age_s=100, max_ranges=10)
    assert state.floor == 2  # not old yet
    state.prune(now_s=1000 + 101, max_age_s=100, max_ranges=10)
    assert (state.floor, state.ranges, state.closed) == (10, [], 6)  # 2-4 and 6-8 given up
    for seq in (12, 14, 16):
        state.add(seq, now_s=2000)
    state.prune(now_s=2000, max_age_s=100, max_ranges=2)
    assert (state.floor, [r[:2] for r in state.ranges], state.closed) == (
        13,
        [[14, 14], [16, 16]],
        8,  # and 10-11
    )


def test_100000_envelopes_live_backlog_and_replays_each_recorded_once(tmp_path):
    count = 100_000
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    dedupe = Deduper(registry)
    order = gateway_delivery(count, seed=16)
    assert len(order) > count * 1.09 and set(order) == set(range(count))
    recorded = [0] * count
    largest_state = 0
    for start in range(0, len(order), 200):
        batch = [("gw1", "kid-1", seq) for seq in order[start : start + 200]]
        for (_, _, seq), new in zip(batch, dedupe.record(batch, RECEIVED), strict=True):
            recorded[seq] += new
        with registry() as s:
            row = s.get(IngestStream, ("gw1", "kid-1"))
            largest_state = max(largest_state, len(row.ranges))
            assert len(StreamState.of(row).ranges) <= DEFAULT_MAX_RANGES
    assert recorded == [1] * count  # every envelope once: none dropped, no duplicate through
    with registry() as s:
        (row,) = s.scalars(select(IngestStream))
    assert (row.floor, row.ranges, row.closed) == (count, "[]", 0)
    # The state's size: a floor and a few open ranges (here at most 13: 326 bytes of JSON),
    # not one row per envelope. With max_ranges=2 this same order loses ~40,000 envelopes.
    assert largest_state < 1000, largest_state


def test_two_workers_racing_on_postgres_record_each_envelope_once(fresh_postgres_url):
    registry = open_registry(fresh_postgres_url)
    order = gateway_delivery(6000, seed=3)
    outcomes: list[list[tuple[int, bool]]] = [[], []]

    def work(n: int) -> None:
        dedupe = Deduper(registry)
        mine = order[n::2] + order[: len(order) // 3]  # each worker also sees a third twice
        for start in range(0, len(mine), 50):
            batch = [("gw1", "k", seq) for seq in mine[start : start + 50]]
            ok = dedupe.record(batch, RECEIVED)
            outcomes[n] += [(seq, new) for (_, _, seq), new in zip(batch, ok, strict=True)]

    threads = [threading.Thread(target=work, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stored = [seq for both in outcomes for seq, new in both if new]
    assert sorted(stored) == list(range(6000))


def test_a_reprovisioned_gateway_starts_again_at_seq_0_and_the_old_key_is_refused(
    tmp_path, identity
):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    service = IngestService(
        registry, SqliteSeriesStore(tmp_path / "s.sqlite"), now=received, key_cache_s=0
    )
    topic = "mf/v1/s1/gw1/up/readings"
    for seq in range(3):
        assert service.handle(topic, envelope(identity, seq)).outcome is Outcome.STORED
    new = GatewayIdentity(Ed25519PrivateKey.generate())
    with registry.begin() as session:
        kid = register_gateway(session, "s1", "gw1", new.public_key)
        revoke_keys(
            session, "gw1", datetime.now(UTC), reason=REPLACED, actor="t", origin="t", keep=kid
        )
    later = [reading(minute=600 + m) for m in range(2)]
    assert service.handle(topic, envelope(new, 0, later[:1])).outcome is Outcome.STORED
    assert service.handle(topic, envelope(new, 1, later[1:])).outcome is Outcome.STORED
    assert service.handle(topic, envelope(new, 1, later[1:])).outcome is Outcome.DUPLICATE
    assert service.handle(topic, envelope(identity, 3)).reason == "revoked_key"
    with registry() as s:
        rows = {r.kid: r.floor for r in s.scalars(select(IngestStream))}
    assert rows == {identity.kid: 3, new.kid: 2}


def test_idle_streams_are_forgotten_after_the_window(tmp_path, identity):
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    clock = [RECEIVED]
    service = IngestService(
        registry, SqliteSeriesStore(tmp_path / "s.sqlite"), now=lambda: clock[0]
    )
    service.handle("mf/v1/s1/gw1/up/readings", envelope(identity, 0))
    clock[0] = RECEIVED + timedelta(days=32)
    assert service.maintain()["streams"] == 0
    clock[0] = RECEIVED + timedelta(days=34)
    assert service.maintain()["streams"] == 1
