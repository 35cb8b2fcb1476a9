"""Bounds: the wire schema's static ones and ingest's window around receipt; each hostile
envelope is dead-lettered once with its reason and the good ones around it are stored."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError
from sqlalchemy import select

from cloud.ingest.bounds import TimeWindow
from cloud.ingest.models import DeadLetter
from cloud.ingest.service import IngestService, Outcome
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.sqlite import SqliteSeriesStore
from edge.keys import GatewayIdentity
from edge.wire import EPOCH_MAX, SEQ_MAX, Reading
from tests.ingest.hostile import hostile_envelopes, raw_payload, signed_raw
from tests.support.factories import RECEIVED, T0, envelope, payload, reading, received

TOPIC = "mf/v1/s1/gw1/up/readings"


@pytest.fixture()
def service(tmp_path, identity) -> IngestService:
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    return IngestService(registry, SqliteSeriesStore(tmp_path / "series.sqlite"), now=received)


def letters(service: IngestService) -> list[tuple[str, str]]:
    with service.registry() as s:
        return [tuple(r) for r in s.execute(select(DeadLetter.reason, DeadLetter.detail))]


def test_schema_bounds_are_the_columns_bounds():
    assert SEQ_MAX == 2**63 - 1 and EPOCH_MAX == 2**31 - 1
    ident = GatewayIdentity(Ed25519PrivateKey.generate())
    base = payload(ident, 0).model_dump()
    model = type(payload(ident, 0))
    model.model_validate(base | {"seq": SEQ_MAX, "epoch": EPOCH_MAX})  # the largest are fine
    for bad in ({"seq": 2**63}, {"epoch": 2**31}, {"seq": -1}):
        with pytest.raises(ValidationError):
            model.model_validate(base | bad)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e400", "no more than 24 digits"),
        ("9" * 50_000, "no more than 24 digits"),
        ("NaN", "finite"),
        ("-Infinity", "finite"),
        ("1e15", "less than 1000000000000000"),
        ("-1e15", "greater than -1000000000000000"),
    ],
)
def test_values_must_be_finite_bounded_decimals(value, message):
    data = reading().model_dump(mode="json") | {"value": value}
    with pytest.raises(ValidationError, match=message):
        Reading.model_validate(data)


def test_ordinary_values_keep_their_digits():
    r = Reading.model_validate(reading().model_dump(mode="json") | {"value": "999999.99"})
    assert r.value == Decimal("999999.99")
    r = Reading.model_validate(reading().model_dump(mode="json") | {"value": "-4.5"})
    assert r.value == Decimal("-4.5")  # the schema allows negatives; ingest judges registers


def test_each_hostile_envelope_is_dead_lettered_with_its_reason(service, identity):
    stranger = GatewayIdentity(Ed25519PrivateKey.generate())
    good = envelope(identity, 0)
    cases = hostile_envelopes(identity, stranger, good, 100, RECEIVED - timedelta(hours=1))
    results = service.handle_batch([(TOPIC, good)] + [(TOPIC, body) for _, body, _ in cases])
    assert results[0].outcome is Outcome.STORED
    assert [(name, r.reason) for (name, _, _), r in zip(cases, results[1:], strict=True)] == [
        (name, reason) for name, _, reason in cases
    ]
    kept = letters(service)
    assert sorted(r for r, _ in kept) == sorted(reason for _, _, reason in cases)
    assert all(detail for _, detail in kept)
    # The readings' positions are named, and the bounds in words.
    details = {r.reason: r.detail for r in results[1:]}
    assert "readings[0]" in details["negative_register"]
    assert "32 days" in details["too_old"] and "6 h" in details["too_new"]


def test_a_bad_reading_refuses_the_whole_envelope_naming_its_index(service, identity):
    body = raw_payload(identity, 5)
    second = dict(body["readings"][0], meter="M2", value="-1")
    body["readings"].append(second)
    result = service.handle(TOPIC, signed_raw(identity, body))
    assert (
        result.reason == "negative_register" and "readings[1] (M2/energy_import)" in result.detail
    )
    assert service.stats.readings_stored == 0


def test_instantaneous_quantities_may_be_negative(service, identity):
    env = envelope(identity, 1, [reading(quantity="power_active", value="-3.5")])
    assert service.handle(TOPIC, env).outcome is Outcome.STORED


def test_the_window_is_configurable(tmp_path, identity):
    registry = open_registry(f"sqlite:///{tmp_path / 'r.sqlite'}")
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    store = SqliteSeriesStore(tmp_path / "s.sqlite")
    narrow = IngestService(
        registry,
        store,
        now=received,
        window=TimeWindow(max_age=timedelta(hours=2), max_ahead=timedelta(minutes=1)),
    )
    assert timedelta(hours=2) < RECEIVED - T0
    result = narrow.handle(TOPIC, envelope(identity, 1))
    assert result.reason == "too_old" and "0.0833333 days" in result.detail
    late = envelope(identity, 2, [reading(minute=int((RECEIVED - T0).total_seconds() // 60))])
    assert narrow.handle(TOPIC, late).reason == "too_old"  # sent_at is T0: too old as well


def test_sent_at_ahead_of_receipt_is_too_new(service, identity):
    body = raw_payload(identity, 3)
    body["sent_at"] = (RECEIVED + timedelta(hours=7)).isoformat().replace("+00:00", "Z")
    result = service.handle(TOPIC, signed_raw(identity, body))
    assert result.reason == "too_new" and result.detail.startswith("sent_at")
