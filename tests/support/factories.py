"""Builders of valid test objects: readings, payloads, registered gateways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from edge.keys import GatewayIdentity
from edge.wire import ClockState, Quality, Reading, ReadingsPayload, seal

T0 = datetime(2026, 11, 1, tzinfo=UTC)
#: The receipt time ingest tests measure the time window from (IngestService ``now``).
RECEIVED = T0 + timedelta(days=1)


def received() -> datetime:
    """A receipt clock standing still at RECEIVED, for ``IngestService(now=received)``."""
    return RECEIVED


def reading(
    meter: str = "M1", minute: int = 0, value: str = "100.25", quantity: str = "energy_import"
) -> Reading:
    return Reading(
        meter=meter,
        quantity=quantity,
        value=Decimal(value),
        unit="kWh",
        read_at=T0 + timedelta(minutes=minute),
        quality=Quality.GOOD,
        round=f"r{minute}",
    )


def payload(
    identity: GatewayIdentity, seq: int, readings: list[Reading] | None = None, gateway: str = "gw1"
) -> ReadingsPayload:
    return ReadingsPayload(
        gateway=gateway,
        kid=identity.kid,
        seq=seq,
        epoch=1,
        sent_at=T0,
        clock=ClockState.SYNCED,
        readings=readings or [reading(minute=seq)],
    )


def envelope(
    identity: GatewayIdentity, seq: int, readings: list[Reading] | None = None, gateway: str = "gw1"
) -> bytes:
    return seal(payload(identity, seq, readings, gateway), identity.private_key)
