"""Commands to gateways: the cloud signs them, and checks the gateways' signed answers.

The formats (``mf.command/1``, ``mf.ack/1``) are owned by ``edge.commands``; the cloud imports
only ``edge.wire`` of ``edge``, so it builds commands as plain JSON of that shape and reads
answers into its own model. The round-trip tests hold both sides to one contract.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography.exceptions import InvalidSignature
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError
from sqlalchemy.orm import Session

from cloud.gateways.provisioning import Clock, CloudSigner, utc_now
from cloud.registry.service import find_key
from edge.wire import DEFAULT_TOPIC_PREFIX, MalformedEnvelope, UtcDatetime, parse_compact

SCHEMA_COMMAND = "mf.command/1"
SCHEMA_ACK = "mf.ack/1"
COMMANDS = frozenset({"reload_config", "read_meter", "sync_time"})
#: Gateways refuse commands that live longer than this (``edge.commands.MAX_COMMAND_TTL``).
MAX_TTL_S = 24 * 3600


class CommandError(Exception):
    """Base of the errors of issuing commands and reading their answers."""


class AckRejected(CommandError):
    """An answer that is not authentic or breaks ``mf.ack/1``; the message says why."""


def command_topic(site: str, gateway: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """Where a gateway listens for commands (QoS 1)."""
    return f"{prefix}/{site}/{gateway}/down/cmd"


def ack_topic(site: str, gateway: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """Where a gateway answers (QoS 1)."""
    return f"{prefix}/{site}/{gateway}/up/ack"


@dataclass(frozen=True)
class SignedCommand:
    """A command ready to publish: its id (to match the answer), expiry and envelope."""

    cmd_id: str
    site: str
    gateway: str
    expires_at: datetime
    envelope: bytes


class Ack(BaseModel):
    """A gateway's verified answer to one command."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["mf.ack/1"] = Field(alias="schema")
    cmd_id: str = Field(min_length=1, max_length=64)
    site: str
    gateway: str
    status: Literal["ok", "error", "refused"]
    detail: str
    result: dict[str, JsonValue] | None
    finished_at: UtcDatetime


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


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
    if not 0 < ttl_s <= MAX_TTL_S:
        raise CommandError(f"ttl_s {ttl_s}: expected more than 0 and at most {MAX_TTL_S}")
    issued_at = now()
    expires_at = issued_at + timedelta(seconds=ttl_s)
    cmd_id = str(uuid.uuid4())
    payload = {
        "schema": SCHEMA_COMMAND,
        "cmd_id": cmd_id,
        "site": site,
        "gateway": gateway,
        "command": command,
        "args": args or {},
        "issued_at": _utc(issued_at),
        "expires_at": _utc(expires_at),
    }
    envelope = signer.sign(json.dumps(payload, separators=(",", ":")).encode())
    return SignedCommand(cmd_id, site, gateway, expires_at, envelope)


def verify_ack(session: Session, envelope: bytes) -> Ack:
    """Verify an ``up/ack`` envelope with the gateway's registered key and return the answer.

    Raises AckRejected for malformed envelopes, unknown or revoked keys, bad signatures, and
    answers naming another gateway or site than the key's.
    """
    try:
        compact = parse_compact(envelope)
    except MalformedEnvelope as exc:
        raise AckRejected(str(exc)) from None
    kid = str(compact.header["kid"])
    known = find_key(session, kid)
    if known is None:
        raise AckRejected(f"key {kid!r} is not registered")
    if known.revoked:
        raise AckRejected(f"key {kid!r} of gateway {known.gateway_id!r} is revoked")
    try:
        known.public_key.verify(compact.signature, compact.signing_input)
    except InvalidSignature:
        raise AckRejected(f"signature does not verify with key {kid!r}") from None
    try:
        ack = Ack.model_validate_json(compact.payload)
    except ValidationError as exc:
        raise AckRejected(f"payload breaks schema {SCHEMA_ACK}: {exc}") from None
    if (ack.site, ack.gateway) != (known.site_id, known.gateway_id):
        raise AckRejected(
            f"answer names gateway {ack.gateway!r} at site {ack.site!r}, but key "
            f"{kid!r} is gateway {known.gateway_id!r} at {known.site_id!r}"
        )
    return ack
