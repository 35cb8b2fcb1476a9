"""Revoking a gateway that was lost, stolen or decommissioned (decision 0043).

:func:`revoke_keys` is the one piece of code that revokes gateway keys: this module's
:class:`GatewayRevocations` (every live key, with the reason), and new hardware replacing old
(:mod:`cloud.gateways.provisioning`, :mod:`cloud.gateways.replacement`, ``register-gateway
--replace``: every key but the new one, reason ``replaced``). Each revocation is a row of
``gateway_revocations`` (who, when, why, which keys); ingest sees a new row before its next
batch and forgets the keys it cached, so the next envelope signed by a revoked key is refused
(``revoked_key``) without restarting anything; health and command answers look keys up for
each message and refuse it at once.

Revoking a gateway also closes the other ways in the cloud controls: its unused claim tokens
expire, commands still awaiting its answer are cancelled, and no command is sent to it any
more (:mod:`cloud.gateways.dispatch`). Its broker user is not the cloud's to remove: the
broker's admin removes it (``deploy/mosquitto/broker-users.sh remove GATEWAY``, docs/broker.md).
A revoked gateway comes back only as a replacement: a claim token with ``replace`` (an
engineer's waits for an admin's approval) or ``register-gateway --replace``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.health import UnknownGateway
from cloud.gateways.models import ClaimToken, GatewayCommandRecord
from cloud.registry.base import as_utc
from cloud.registry.models import Gateway, GatewayKey, GatewayRevocation
from cloud.staff.accounts import ENGINEER_ROLES, Principal
from cloud.staff.audit import record_change
from edge.wire import Clock, utc_now

#: Why a gateway is revoked by hand; ``other`` needs a note.
REASONS = ("lost", "stolen", "decommissioned", "other")
#: Why keys are revoked when new hardware replaces old.
REPLACED = "replaced"
#: Longest note, in characters.
MAX_NOTE_CHARS = 500
#: A command still awaiting the gateway's answer when it was revoked.
CANCELLED = "cancelled"


class RevocationRefused(Exception):
    """The request cannot be done as asked; the message says what was expected, ``code``
    which: ``reason`` (not one of REASONS), ``note_missing`` (``other`` without a note) or
    ``note_long`` (over MAX_NOTE_CHARS characters)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RevocationView:
    """A gateway's revocation as the pages, the API and the command show it."""

    gateway: str
    site: str
    reason: str
    note: str
    revoked_by: str
    revoked_at: datetime
    kids: list[str]


@dataclass(frozen=True)
class RevokeOutcome:
    """What revoking did. ``changed`` False: the gateway held no live key already (nothing
    was done; ``revocation`` is the earlier one, None if it has no record)."""

    gateway: str
    changed: bool
    revocation: RevocationView | None
    claims_closed: int = 0
    commands_cancelled: int = 0


def live_kids(session: Session, gateway: str) -> list[str]:
    """The gateway's keys that are not revoked, sorted."""
    return sorted(
        session.scalars(
            select(GatewayKey.kid).where(
                GatewayKey.gateway_id == gateway, GatewayKey.revoked_at.is_(None)
            )
        )
    )


def revoke_keys(
    session: Session,
    gateway: str,
    now: datetime,
    *,
    reason: str,
    actor: str,
    origin: str,
    note: str = "",
    keep: str | None = None,
) -> list[str]:
    """Revoke every live key of ``gateway`` but ``keep`` at ``now`` and record why (a
    ``gateway_revocations`` row, when any key was live); return the revoked key ids."""
    query = select(GatewayKey).where(
        GatewayKey.gateway_id == gateway, GatewayKey.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(GatewayKey.kid != keep)
    keys = list(session.scalars(query))
    for key in keys:
        key.revoked_at = now
    kids = sorted(k.kid for k in keys)
    if kids:
        session.add(
            GatewayRevocation(
                gateway_id=gateway,
                reason=reason,
                note=note,
                revoked_by=actor[:100],
                origin=origin[:100],
                revoked_at=now,
                kids=kids,
            )
        )
        session.flush()
    return kids


def revocations(session: Session, gateway_ids: Iterable[str]) -> dict[str, RevocationView]:
    """The latest revocation of each of ``gateway_ids`` that holds no live key (a revoked
    gateway); gateways with a live key, or revoked with no record, are left out."""
    ids = sorted(set(gateway_ids))
    if not ids:
        return {}
    live = set(
        session.scalars(
            select(GatewayKey.gateway_id).where(
                GatewayKey.gateway_id.in_(ids), GatewayKey.revoked_at.is_(None)
            )
        )
    )
    dead = [g for g in ids if g not in live]
    out: dict[str, RevocationView] = {}
    if not dead:
        return out
    rows = session.execute(
        select(GatewayRevocation, Gateway.site_id)
        .join(Gateway, Gateway.id == GatewayRevocation.gateway_id)
        .where(GatewayRevocation.gateway_id.in_(dead))
        .order_by(GatewayRevocation.id)
    )
    for row, site in rows:
        out[row.gateway_id] = RevocationView(
            gateway=row.gateway_id,
            site=site,
            reason=row.reason,
            note=row.note,
            revoked_by=row.revoked_by,
            revoked_at=as_utc(row.revoked_at),
            kids=list(row.kids or []),
        )
    return out


def check_reason(reason: str, note: str) -> str:
    """The note, trimmed; RevocationRefused for an unknown reason, ``other`` without a note,
    or a note over MAX_NOTE_CHARS characters."""
    if reason not in REASONS:
        raise RevocationRefused(
            f"reason {reason[:20]!r}: expected one of {', '.join(REASONS)}", "reason"
        )
    note = note.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise RevocationRefused(
            f"note: {len(note)} characters; at most {MAX_NOTE_CHARS} are accepted", "note_long"
        )
    if reason == "other" and not note:
        raise RevocationRefused("note: the reason 'other' needs a note saying why", "note_missing")
    return note


class GatewayRevocations:
    """Revokes gateways for engineers of their site and admins; lists revoked gateways."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.clock = clock

    def revoke(self, who: Principal, gateway: str, reason: str, note: str = "") -> RevokeOutcome:
        """Revoke every live key of ``gateway`` (in ``who``'s sites), expire its unused claim
        tokens and cancel the commands awaiting its answer, audited, in one transaction.

        A gateway without a live key is left as it is (``changed`` False). Raises
        PermissionError (a role that may not), UnknownGateway (no such gateway in scope) or
        RevocationRefused (bad reason or note)."""
        if who.role not in ENGINEER_ROLES:
            raise PermissionError(f"the {who.role.value} role may not revoke gateways")
        now = self.clock()
        with self.sessions.begin() as session:
            row = session.get(Gateway, gateway)
            if row is None or not who.may_act_on(row.site_id):
                raise UnknownGateway(f"no gateway {gateway!r}")
            note = check_reason(reason, note)
            kids = revoke_keys(
                session,
                gateway,
                now,
                reason=reason,
                actor=who.username,
                origin=who.origin or "unknown",
                note=note,
            )
            if not kids:
                return RevokeOutcome(gateway, False, revocations(session, [gateway]).get(gateway))
            claims = session.execute(
                update(ClaimToken)
                .where(
                    ClaimToken.gateway_id == gateway,
                    ClaimToken.used_at.is_(None),
                    ClaimToken.expires_at > now,
                )
                .values(expires_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            cancelled = session.execute(
                update(GatewayCommandRecord)
                .where(
                    GatewayCommandRecord.gateway_id == gateway,
                    GatewayCommandRecord.status == "sent",
                    GatewayCommandRecord.expires_at > now,
                )
                .values(status=CANCELLED, detail=f"gateway revoked ({reason}) before it answered")
                .execution_options(synchronize_session=False)
            ).rowcount
            record_change(
                session,
                at=now,
                actor=who.username,
                origin=who.origin or "unknown",
                action="revoke_gateway",
                subject=f"gateway:{gateway}",
                before={"live_keys": kids},
                after={
                    "live_keys": [],
                    "reason": reason,
                    "claims_closed": claims or 0,
                    "commands_cancelled": cancelled or 0,
                },
                note=note,
            )
            return RevokeOutcome(
                gateway,
                True,
                revocations(session, [gateway]).get(gateway),
                claims or 0,
                cancelled or 0,
            )

    def revoked(self, gateway_ids: Iterable[str]) -> dict[str, RevocationView]:
        """:func:`revocations` of ``gateway_ids`` (the caller keeps to its scope)."""
        with self.sessions() as session:
            return revocations(session, gateway_ids)
