"""Registering sites, gateways, their public keys and meters; finding a key by its id and
opening an envelope a gateway signed with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.registry.models import Gateway, GatewayKey, GatewayRevocation, Meter, Site
from edge.wire import (
    BadSignature,
    MalformedEnvelope,
    key_id,
    load_public_key_b64,
    open_compact,
    parse_compact,
    public_key_b64,
)


class RegistryError(Exception):
    """A registry change that contradicts what is registered already."""


@dataclass(frozen=True)
class KnownKey:
    """A registered gateway key as ingest needs it."""

    kid: str
    gateway_id: str
    site_id: str
    public_key: Ed25519PublicKey
    revoked: bool


def ensure_site(
    session: Session, site_id: str, name: str | None = None, timezone: str = "Asia/Shanghai"
) -> Site:
    site = session.get(Site, site_id)
    if site is None:
        site = Site(id=site_id, name=name or site_id, timezone=timezone)
        session.add(site)
    return site


def register_gateway(
    session: Session, site_id: str, gateway_id: str, public_key: Ed25519PublicKey
) -> str:
    """Register ``gateway_id`` at ``site_id`` with ``public_key``; return the key id.

    Registering the same key again is a no-op, but a revoked key is refused; a gateway may
    hold several keys (rotation).
    """
    now = datetime.now(UTC)
    ensure_site(session, site_id)
    gateway = session.get(Gateway, gateway_id)
    if gateway is None:
        session.add(Gateway(id=gateway_id, site_id=site_id, created_at=now))
    elif gateway.site_id != site_id:
        raise RegistryError(
            f"gateway {gateway_id!r} belongs to site {gateway.site_id!r}, not {site_id!r}"
        )
    kid = key_id(public_key)
    existing = session.get(GatewayKey, kid)
    if existing is None:
        session.add(
            GatewayKey(
                kid=kid,
                gateway_id=gateway_id,
                public_key=public_key_b64(public_key),
                created_at=now,
            )
        )
    elif existing.gateway_id != gateway_id:
        raise RegistryError(f"key {kid} is registered to gateway {existing.gateway_id!r}")
    elif existing.revoked_at is not None:
        raise RegistryError(f"key {kid} was revoked; a revoked key is never accepted again")
    session.flush()
    return kid


def revocation_mark(session: Session) -> tuple[int, int]:
    """How many revocations are recorded and the newest one's id: it changes whenever keys
    are revoked (``cloud.gateways.revocation.revoke_keys``), so a reader that cached keys
    knows to read them again. The count catches a revocation whose transaction commits after
    one with a higher id."""
    count, newest = session.execute(
        select(func.count(GatewayRevocation.id), func.max(GatewayRevocation.id))
    ).one()
    return int(count or 0), int(newest or 0)


def find_key(session: Session, kid: str) -> KnownKey | None:
    row = session.execute(
        select(GatewayKey, Gateway.site_id)
        .join(Gateway, Gateway.id == GatewayKey.gateway_id)
        .where(GatewayKey.kid == kid)
    ).first()
    if row is None:
        return None
    key, site_id = row
    return KnownKey(
        kid=key.kid,
        gateway_id=key.gateway_id,
        site_id=site_id,
        public_key=load_public_key_b64(key.public_key),
        revoked=key.revoked_at is not None,
    )


_Payload = TypeVar("_Payload", bound=BaseModel)


class EnvelopeRefused(Exception):
    """A gateway envelope that cannot be trusted; ``reason`` is ``malformed``,
    ``unknown_key``, ``revoked_key`` or ``bad_signature`` and the message says what came."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def open_gateway_envelope(
    envelope: bytes, model: type[_Payload], lookup: Callable[[str], KnownKey | None]
) -> tuple[KnownKey, _Payload]:
    """Open an envelope signed by a gateway: find the key its header names (``lookup``, e.g.
    :func:`find_key` on a session), refuse unknown and revoked keys, then verify and parse
    the payload as ``model`` (:func:`edge.wire.open_compact`). Whether the payload's gateway
    and site are the key's is the caller's check: each payload names them its own way."""
    try:
        compact = parse_compact(envelope)
    except MalformedEnvelope as exc:
        raise EnvelopeRefused("malformed", str(exc)) from None
    kid = str(compact.header["kid"])
    known = lookup(kid)
    if known is None:
        raise EnvelopeRefused("unknown_key", f"key {kid!r} is not registered")
    if known.revoked:
        raise EnvelopeRefused(
            "revoked_key", f"key {kid!r} of gateway {known.gateway_id!r} is revoked"
        )
    try:
        return known, open_compact(compact, known.public_key, model)
    except BadSignature as exc:
        raise EnvelopeRefused("bad_signature", str(exc)) from None
    except MalformedEnvelope as exc:
        raise EnvelopeRefused("malformed", str(exc)) from None


def register_meter(
    session: Session,
    site_id: str,
    meter_id: str,
    *,
    protocol: str,
    address: str,
    gateway_id: str | None = None,
    parent_id: str | None = None,
) -> Meter:
    meter = session.get(Meter, (site_id, meter_id))
    if meter is None:
        meter = Meter(
            id=meter_id,
            site_id=site_id,
            gateway_id=gateway_id,
            protocol=protocol,
            address=address,
            parent_id=parent_id,
        )
        session.add(meter)
    return meter


def site_meters(session: Session, site_id: str) -> frozenset[str]:
    """The ids of the meters registered for ``site_id`` (by ``site import``; empty: none
    registered yet, and ingest then checks no ownership, decision 0015)."""
    return frozenset(session.scalars(select(Meter.id).where(Meter.site_id == site_id)))
