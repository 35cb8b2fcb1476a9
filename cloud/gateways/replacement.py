"""Replacements of a gateway's hardware awaiting an admin: listing, approving, rejecting.

An engineer's replacement claim, once redeemed by the new hardware, leaves its key here
(:mod:`cloud.gateways.provisioning`): not registered, so ingest refuses its envelopes as
``unknown_key``, and the old key keeps working. An admin approves (the new key is registered,
every other key of the gateway revoked, the gateway's trusted command key set to the one the
new hardware was given; other pending replacements of the gateway are superseded) or rejects.
Each decision is written to the audit log in its transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.models import GatewayReplacement
from cloud.gateways.provisioning import CommandKeys
from cloud.gateways.revocation import REPLACED, revoke_keys
from cloud.registry.base import as_utc
from cloud.registry.service import RegistryError, register_gateway
from cloud.staff.audit import record
from edge.wire import Clock, load_public_key_b64, utc_now

PENDING, APPROVED, REJECTED, SUPERSEDED = "pending", "approved", "rejected", "superseded"


class ReplacementError(Exception):
    """No such pending replacement, or it cannot be approved; the message says which."""


@dataclass(frozen=True)
class ReplacementView:
    """A replacement as the admin and engineer pages show it."""

    id: int
    site: str
    gateway: str
    kid: str
    requested_by: str | None
    requested_at: datetime
    status: str
    decided_by: str | None
    decided_at: datetime | None
    #: Keys revoked by the approval (empty otherwise).
    revoked: tuple[str, ...] = ()


def _view(row: GatewayReplacement, revoked: tuple[str, ...] = ()) -> ReplacementView:
    return ReplacementView(
        id=row.id,
        site=row.site_id,
        gateway=row.gateway_id,
        kid=row.kid,
        requested_by=row.requested_by,
        requested_at=as_utc(row.requested_at),
        status=row.status,
        decided_by=row.decided_by,
        decided_at=as_utc(row.decided_at),
        revoked=revoked,
    )


class ReplacementService:
    """Lists and decides replacements; each decision is one registry transaction."""

    def __init__(
        self, sessions: sessionmaker[Session], command_keys: CommandKeys, clock: Clock = utc_now
    ) -> None:
        self.sessions = sessions
        self.command_keys = command_keys
        self.clock = clock

    def listing(
        self, sites: frozenset[str] | None = None, *, pending_only: bool = True
    ) -> list[ReplacementView]:
        """Replacements, newest first, of ``sites`` (None: every site)."""
        query = select(GatewayReplacement).order_by(GatewayReplacement.requested_at.desc())
        if pending_only:
            query = query.where(GatewayReplacement.status == PENDING)
        if sites is not None:
            query = query.where(GatewayReplacement.site_id.in_(sorted(sites)))
        with self.sessions() as session:
            return [_view(r) for r in session.scalars(query.limit(500))]

    def pending_gateways(self, sites: frozenset[str] | None = None) -> set[str]:
        """The gateways (of ``sites``; None: all) with a replacement awaiting an admin."""
        return {v.gateway for v in self.listing(sites)}

    def _pending(self, session: Session, replacement_id: int) -> GatewayReplacement:
        row = session.get(GatewayReplacement, replacement_id)
        if row is None or row.status != PENDING:
            state = "no" if row is None else f"it is {row.status}, not a pending"
            raise ReplacementError(f"replacement {replacement_id}: {state} replacement")
        return row

    def approve(self, replacement_id: int, admin: str) -> ReplacementView:
        """Register the new key, revoke the gateway's others, supersede other requests."""
        now = self.clock()
        with self.sessions.begin() as session:
            row = self._pending(session, replacement_id)
            try:
                register_gateway(
                    session, row.site_id, row.gateway_id, load_public_key_b64(row.public_key)
                )
            except RegistryError as exc:
                raise ReplacementError(f"replacement {replacement_id}: {exc}") from None
            revoked = tuple(
                revoke_keys(
                    session,
                    row.gateway_id,
                    now,
                    reason=REPLACED,
                    actor=admin,
                    origin="replacement",
                    keep=row.kid,
                )
            )
            self.command_keys.confirm(session, row.gateway_id, row.command_kid, only=True)
            row.status, row.decided_by, row.decided_at = APPROVED, admin, now
            for other in session.scalars(
                select(GatewayReplacement).where(
                    GatewayReplacement.gateway_id == row.gateway_id,
                    GatewayReplacement.status == PENDING,
                    GatewayReplacement.id != row.id,
                )
            ):
                other.status, other.decided_by, other.decided_at = SUPERSEDED, admin, now
            record(
                session,
                at=now,
                actor=admin,
                action="approve_replacement",
                subject=f"gateway:{row.gateway_id}",
                detail=f"key {row.kid} registered; revoked {', '.join(revoked) or 'none'}",
            )
            return _view(row, revoked)

    def reject(self, replacement_id: int, admin: str) -> ReplacementView:
        """Refuse the new hardware: its key is never registered; the old one stays."""
        now = self.clock()
        with self.sessions.begin() as session:
            row = self._pending(session, replacement_id)
            row.status, row.decided_by, row.decided_at = REJECTED, admin, now
            record(
                session,
                at=now,
                actor=admin,
                action="reject_replacement",
                subject=f"gateway:{row.gateway_id}",
                detail=f"key {row.kid} refused",
            )
            return _view(row)
