"""Ingest decisions, on the embedded stores (the MQTT path is in test_ingest_mqtt.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from cloud.gateways.revocation import revoke_keys
from cloud.ingest.models import DeadLetter
from cloud.ingest.points import payload_points
from cloud.ingest.service import (
    IngestService,
    Outcome,
    RejectReason,
    StoreUnavailable,
)
from cloud.registry.db import open_registry
from cloud.registry.service import register_gateway
from cloud.series.sqlite import SqliteSeriesStore
from edge.keys import GatewayIdentity
from edge.wire import open_envelope
from tests.support.factories import T0, envelope, reading, received

TOPIC = "mf/v1/s1/gw1/up/readings"


@pytest.fixture()
def service(tmp_path, identity) -> IngestService:
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    with registry.begin() as session:
        register_gateway(session, "s1", "gw1", identity.public_key)
    return IngestService(registry, SqliteSeriesStore(tmp_path / "series.sqlite"), now=received)


def stored_values(service: IngestService, meter: str = "M1") -> list[float]:
    frame = service.store.read(meter, "energy_import", T0, T0 + timedelta(days=1), site="s1")
    return frame.values.tolist()


def dead_letters(service: IngestService) -> list[str]:
    with service.registry() as s:
        return list(s.scalars(select(DeadLetter.reason).order_by(DeadLetter.id)))


def test_late_backlog_in_order_is_accepted(service, identity):
    results = [service.handle(TOPIC, envelope(identity, seq)) for seq in range(5)]
    assert [r.outcome for r in results] == [Outcome.STORED] * 5
    assert len(stored_values(service)) == 5


def test_envelope_for_another_gateways_topic_is_refused(service, identity):
    result = service.handle("mf/v1/s1/gw2/up/readings", envelope(identity, 1))
    assert result.reason is RejectReason.WRONG_GATEWAY
    assert stored_values(service) == []


def test_payload_claiming_another_gateway_is_refused(service, identity):
    result = service.handle(TOPIC, envelope(identity, 1, gateway="gw9"))
    assert result.reason is RejectReason.WRONG_GATEWAY


def test_revoked_key_is_refused_from_the_next_envelope_though_the_key_was_cached(service, identity):
    assert service.key_cache_s >= 30  # the key stays cached: the revocation must clear it
    assert service.handle(TOPIC, envelope(identity, 0)).outcome is Outcome.STORED
    with service.registry.begin() as session:
        revoke_keys(
            session, "gw1", datetime.now(UTC), reason="stolen", actor="eng-a", origin="test"
        )
    assert service.handle(TOPIC, envelope(identity, 1)).reason is RejectReason.REVOKED_KEY
    assert len(stored_values(service)) == 1  # what came before the revocation stays


def test_rotated_key_is_accepted_for_the_same_gateway(service):
    new = GatewayIdentity(Ed25519PrivateKey.generate())
    with service.registry.begin() as session:
        register_gateway(session, "s1", "gw1", new.public_key)
    assert service.handle(TOPIC, envelope(new, 1)).outcome is Outcome.STORED


def test_bad_topic_and_oversized_body_are_dead_lettered(service, identity):
    service.handle("mf/v1/s1/gw1/up", envelope(identity, 1))
    service.handle(TOPIC, b"x" * (300 * 1024))
    assert dead_letters(service) == ["malformed", "oversized"]
    assert service.stats.rejected == 2


def test_storage_failure_raises_and_records_nothing(service, identity, mocker):
    # Reads work but writes fail with the store's own error: an outage, not the data's fault.
    mocker.patch.object(service.store, "write", side_effect=OSError("disk full"))
    with pytest.raises(StoreUnavailable, match="disk full"):
        service.handle(TOPIC, envelope(identity, 1))
    mocker.stopall()
    # The message stays with the broker; its redelivery is stored, not taken for a duplicate.
    assert service.handle(TOPIC, envelope(identity, 1)).outcome is Outcome.STORED


def test_redelivery_after_crash_between_write_and_record_stores_once(service, identity):
    env = envelope(identity, 1, [reading(minute=m) for m in range(3)])
    service.store.write(payload_points("s1", open_envelope(env, identity.public_key)))
    assert service.handle(TOPIC, env).outcome is Outcome.STORED
    assert len(stored_values(service)) == 3
    with service.registry() as s:
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 0
