"""Commands to gateways: the cloud signs them, and checks the gateways' signed answers.

The formats (``mf.command/1``, ``mf.ack/1``) are part of the wire contract in :mod:`edge.wire`;
the cloud builds :class:`~edge.wire.Command` and reads :class:`~edge.wire.Ack` with the same
models the gateway uses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import JsonValue, ValidationError
from sqlalchemy.orm import Session

from cloud.gateways.provisioning import CloudSigner
from cloud.registry.service import EnvelopeRefused, find_key, open_gateway_envelope
from edge.wire import (
    MAX_COMMAND_TTL,
    Ack,
    Clock,
    Command,
    CommandName,
    utc_now,
)

COMMANDS = frozenset(CommandName)


class CommandError(Exception):
    """Base of the errors of issuing commands and reading their answers."""


class AckRejected(CommandError):
    """An answer that is not authentic or breaks ``mf.ack/1``; the message says why."""


@dataclass(frozen=True)
class SignedCommand:
    """A command ready to publish: its id (to match the answer), expiry and envelope."""

    cmd_id: str
    site: str
    gateway: str
    expires_at: datetime
    envelope: bytes


def issue_command(
    signer: CloudSigner,
    site: str,
    gateway: str,
    command: str,
    args: dict[str, JsonValue] | None = None,
    ttl_s: float = 300,
    *,
    now: Clock = utc_now,
) -> SignedCommand:
    """Sign ``command`` with ``args`` for ``gateway`` at ``site``; it expires after ``ttl_s``."""
    if command not in COMMANDS:
        raise CommandError(f"unknown command {command!r}; expected one of {sorted(COMMANDS)}")
    max_ttl_s = MAX_COMMAND_TTL.total_seconds()
    if not 0 < ttl_s <= max_ttl_s:
        raise CommandError(f"ttl_s {ttl_s}: expected more than 0 and at most {max_ttl_s:.0f}")
    issued_at = now()
    expires_at = issued_at + timedelta(seconds=ttl_s)
    try:
        body = Command(
            cmd_id=uuid.uuid4(),
            site=site,
            gateway=gateway,
            command=CommandName(command),
            args=args or {},
            issued_at=issued_at,
            expires_at=expires_at,
        )
    except ValidationError as exc:
        raise CommandError(f"command for {site}/{gateway} breaks mf.command/1: {exc}") from None
    envelope = signer.sign(body.to_bytes())
    return SignedCommand(str(body.cmd_id), site, gateway, expires_at, envelope)


def verify_ack(session: Session, envelope: bytes) -> Ack:
    """Verify an ``up/ack`` envelope with the gateway's registered key and return the answer.

    Raises AckRejected for malformed envelopes, unknown or revoked keys, bad signatures, and
    answers naming another gateway or site than the key's.
    """
    try:
        known, ack = open_gateway_envelope(envelope, Ack, lambda kid: find_key(session, kid))
    except EnvelopeRefused as exc:
        raise AckRejected(str(exc)) from None
    if (ack.site, ack.gateway) != (known.site_id, known.gateway_id):
        raise AckRejected(
            f"answer names gateway {ack.gateway!r} at site {ack.site!r}, but key "
            f"{known.kid!r} is gateway {known.gateway_id!r} at {known.site_id!r}"
        )
    return ack
