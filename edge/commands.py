"""Cloud-signed commands to a gateway (``down/cmd``) and the gateway's signed answers (``up/ack``).

The formats live in :mod:`edge.wire` with the rest of the contract: a command is an
``mf.command/1`` payload in a JWS compact envelope (EdDSA) signed with the cloud's key; an
answer is an ``mf.ack/1`` payload signed with the gateway's key. The cloud builds and checks
them with the same models.

:class:`CommandReceiver` checks a command and runs it at most once:

- not a JWS, signed by another key, or a bad signature: dropped, never executed, no answer
  (the sender cannot be trusted, so there is nobody to answer);
- authentic but unacceptable (breaks the schema, addressed to another gateway, expired, lives
  longer than allowed, already received, no handler here): answered ``refused`` with why;
- otherwise the registered handler runs; answered ``ok`` with its result, or ``error``.

Received command ids are kept in a small SQLite file until a day past their expiry: a command
is refused once expired, so older ids need not be remembered, and the file stays bounded.

The cloud keys a gateway trusts (:class:`CloudKeyStore`) start as the one it was provisioned
with (``cloud.pub``). The receiver itself handles ``trust_cloud_key`` (rotation, decision
0018): a command signed by a trusted key that names a new key and when the signing key
retires; both keys are trusted until then, only the new one afterwards. The set is kept in
``cloud-keys.json`` next to ``cloud.pub``, replaced atomically.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import JsonValue, TypeAdapter, ValidationError

from edge.keys import GatewayIdentity, key_id, load_public_key_b64, public_key_b64
from edge.provision import load_cloud_key
from edge.wire import (
    ACK_DETAIL_MAX,
    MAX_COMMAND_TTL,
    SCHEMA_COMMAND,
    Ack,
    AckStatus,
    BadSignature,
    Command,
    CommandName,
    MalformedEnvelope,
    Topics,
    parse_compact,
    sign_compact,
    utc_now,
    verify_signature,
)

log = logging.getLogger(__name__)
CLOUD_KEYS_FILE = "cloud-keys.json"
#: The key id that signed the command being run (each handler runs in a task of its own).
_SIGNED_BY: contextvars.ContextVar[str] = contextvars.ContextVar("signed_by")
#: The longest overlap a ``trust_cloud_key`` command may set for the key that signs it.
MAX_KEY_OVERLAP = timedelta(days=90)


@dataclass(frozen=True)
class TrustedKey:
    """A cloud key this gateway verifies commands with, until ``not_after`` (None: no end)."""

    kid: str
    public_key: Ed25519PublicKey
    not_after: datetime | None = None


class CloudKeyStore:
    """The cloud keys a gateway trusts; persisted in ``path`` when one is given."""

    def __init__(self, keys: list[TrustedKey], path: Path | None = None) -> None:
        self._keys = {k.kid: k for k in keys}
        self.path = path

    @classmethod
    def single(cls, key: Ed25519PublicKey) -> CloudKeyStore:
        """One key, kept in memory only (no rotation survives a restart)."""
        return cls([TrustedKey(key_id(key), key)])

    @classmethod
    def open(cls, data_dir: Path) -> CloudKeyStore:
        """The keys in ``data_dir``: ``cloud-keys.json`` once a rotation came, else
        ``cloud.pub`` as provisioned. ValueError/OSError name the file when it is damaged."""
        path = data_dir / CLOUD_KEYS_FILE
        if not path.exists():
            return cls([TrustedKey(key_id(k), k) for k in [load_cloud_key(data_dir)]], path)
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))["keys"]
            keys = [
                TrustedKey(
                    r["kid"],
                    load_public_key_b64(r["public_key"]),
                    None if r["not_after"] is None else datetime.fromisoformat(r["not_after"]),
                )
                for r in rows
            ]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a cloud key list: {exc}") from None
        for k in keys:
            if key_id(k.public_key) != k.kid:
                raise ValueError(f"{path}: key id {k.kid} is not its key's thumbprint")
        return cls(keys, path)

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    def get(self, kid: str) -> TrustedKey | None:
        return self._keys.get(kid)

    def trust(self, new: Ed25519PublicKey, retiring: str, retire_at: datetime) -> None:
        """Trust ``new`` from now on and ``retiring`` until ``retire_at``; persist."""
        old = self._keys[retiring]
        until = retire_at if old.not_after is None else min(old.not_after, retire_at)
        self._keys[retiring] = TrustedKey(old.kid, old.public_key, until)
        self._keys[key_id(new)] = TrustedKey(key_id(new), new)
        if self.path is not None:
            body = {
                "keys": [
                    {
                        "kid": k.kid,
                        "public_key": public_key_b64(k.public_key),
                        "not_after": None if k.not_after is None else k.not_after.isoformat(),
                    }
                    for k in self._keys.values()
                ]
            }
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(body, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)


@dataclass(frozen=True)
class Dropped:
    """A message the receiver discarded without running or answering it, and why."""

    reason: str


#: A command handler: gets the command, returns a JSON-able result (or None) or raises.
CommandHandler = Callable[[Command], Awaitable[Mapping[str, JsonValue] | None]]
#: Publishes ``body`` on ``topic`` at QoS 1 (e.g. the gateway's MQTT session).
Publish = Callable[[str, bytes], object]
_HANDLER_RESULT = TypeAdapter(dict[str, JsonValue] | None)


def _schema_problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
    )


def _cmd_id_of(payload: bytes) -> str | None:
    """The ``cmd_id`` of a payload that broke the schema, if it still carries a UUID one."""
    try:
        data = json.loads(payload)
        return str(UUID(data["cmd_id"])) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


class CommandLog:
    """The command ids this gateway has received, persisted before a command runs.

    Rows are deleted ``retention`` after their command's expiry; by then the command is
    refused as expired anyway.
    """

    def __init__(self, path: Path | str, retention: timedelta = timedelta(days=1)) -> None:
        self.retention = retention
        self._db = sqlite3.connect(path, isolation_level=None)
        # FULL: a power cut must not forget a command that already ran.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS received_commands ("
            " cmd_id TEXT PRIMARY KEY, command TEXT NOT NULL, received_at TEXT NOT NULL,"
            " expires_at REAL NOT NULL, status TEXT)"
        )

    def admit(self, command: Command, now: datetime) -> str | None:
        """Record ``command`` as received; return None if it is new, else when it came first."""
        self._db.execute(
            "DELETE FROM received_commands WHERE expires_at < ?",
            ((now - self.retention).timestamp(),),
        )
        cur = self._db.execute(
            "INSERT OR IGNORE INTO received_commands (cmd_id, command, received_at, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (
                str(command.cmd_id),
                command.command.value,
                now.isoformat(),
                command.expires_at.timestamp(),
            ),
        )
        if cur.rowcount == 1:
            return None
        row = self._db.execute(
            "SELECT received_at FROM received_commands WHERE cmd_id = ?", (str(command.cmd_id),)
        ).fetchone()
        return row[0]

    def finish(self, cmd_id: str, status: AckStatus) -> None:
        self._db.execute(
            "UPDATE received_commands SET status = ? WHERE cmd_id = ?", (status.value, cmd_id)
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM received_commands").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class CommandReceiver:
    """Verifies, admits and runs commands for one gateway, and publishes signed answers.

    Independent of the agent: it is given the keys, a ``publish`` callable and a command log;
    the agent registers a handler per command and feeds :meth:`handle` each message received
    on :attr:`command_topic`.
    """

    def __init__(
        self,
        *,
        site: str,
        gateway: str,
        identity: GatewayIdentity,
        cloud_key: Ed25519PublicKey | None = None,
        cloud_keys: CloudKeyStore | None = None,
        publish: Publish,
        command_log: CommandLog,
        topics: Topics | None = None,
        clock: Callable[[], datetime] = utc_now,
        handler_timeout_s: float = 60.0,
        max_ttl: timedelta = MAX_COMMAND_TTL,
    ) -> None:
        self.site = site
        self.gateway = gateway
        self.identity = identity
        if cloud_keys is None:
            if cloud_key is None:
                raise ValueError(
                    "a command receiver needs the cloud's key (cloud_key or cloud_keys)"
                )
            cloud_keys = CloudKeyStore.single(cloud_key)
        self.cloud_keys = cloud_keys
        self.topics = topics or Topics()
        self.command_topic = self.topics.command(site, gateway)
        self.ack_topic = self.topics.ack(site, gateway)
        self._publish = publish
        self._log = command_log
        self._clock = clock
        self._timeout_s = handler_timeout_s
        self._max_ttl = max_ttl
        self._handlers: dict[CommandName, CommandHandler] = {
            CommandName.TRUST_CLOUD_KEY: self._trust_cloud_key
        }

    def register(self, command: CommandName | str, handler: CommandHandler) -> None:
        """Run ``handler`` for ``command``; ValueError for a command no gateway knows."""
        self._handlers[CommandName(command)] = handler

    async def handle(self, envelope: bytes) -> Ack | Dropped:
        """Check and run one received command; return the answer published, or why it was
        dropped unanswered."""
        try:
            compact = parse_compact(envelope)
        except MalformedEnvelope as exc:
            return self._drop(f"not a command envelope: {exc}")
        kid = str(compact.header["kid"])
        trusted = self.cloud_keys.get(kid)
        if trusted is None:
            return self._drop(
                f"signed with key {kid!r}; this gateway trusts only the cloud "
                f"key{'s' if len(self.cloud_keys.kids) > 1 else ''} "
                f"{', '.join(repr(k) for k in self.cloud_keys.kids)}"
            )
        if trusted.not_after is not None and trusted.not_after <= self._clock():
            return self._drop(
                f"signed with cloud key {kid!r}, retired at {trusted.not_after.isoformat()}"
            )
        try:
            verify_signature(compact, trusted.public_key)
        except BadSignature:
            return self._drop(f"signature does not verify with the cloud key {kid!r}")
        try:
            command = Command.model_validate_json(compact.payload)
        except ValidationError as exc:
            reason = f"payload breaks schema {SCHEMA_COMMAND}: {_schema_problems(exc)}"
            cmd_id = _cmd_id_of(compact.payload)
            return (
                self._drop(reason)
                if cmd_id is None
                else self._answer(cmd_id, AckStatus.REFUSED, reason)
            )
        cmd_id = str(command.cmd_id)
        now = self._clock()
        refusal = self._refusal(command, now)
        if refusal is None:
            first_seen = self._log.admit(command, now)
            if first_seen is not None:
                refusal = (
                    f"command {cmd_id} was received already at {first_seen}; "
                    f"a command runs at most once"
                )
        if refusal is not None:
            return self._answer(cmd_id, AckStatus.REFUSED, refusal)
        _SIGNED_BY.set(kid)
        status, detail, result = await self._run(command)
        self._log.finish(cmd_id, status)
        return self._answer(cmd_id, status, detail, result)

    def _refusal(self, command: Command, now: datetime) -> str | None:
        if (command.site, command.gateway) != (self.site, self.gateway):
            return (
                f"addressed to gateway {command.gateway!r} at site {command.site!r}; "
                f"this is gateway {self.gateway!r} at site {self.site!r}"
            )
        if command.expires_at <= now:
            return (
                f"expired at {command.expires_at.isoformat()}; the gateway's clock says "
                f"{now.isoformat()}"
            )
        if command.expires_at - command.issued_at > self._max_ttl:
            lifetime = command.expires_at - command.issued_at
            return (
                f"lives {lifetime.total_seconds():.0f} s (issued_at → expires_at); at most "
                f"{self._max_ttl.total_seconds():.0f} s are accepted"
            )
        if command.command not in self._handlers:
            return f"command {command.command.value!r} has no handler on this gateway"
        return None

    async def _run(self, command: Command) -> tuple[AckStatus, str, dict[str, JsonValue] | None]:
        handler = self._handlers[command.command]
        try:
            result = await asyncio.wait_for(handler(command), self._timeout_s)
        except TimeoutError:
            return AckStatus.ERROR, f"did not finish within {self._timeout_s} s", None
        except Exception as exc:  # a failing handler is reported to the cloud, not raised
            log.warning("command %s (%s) failed", command.cmd_id, command.command, exc_info=True)
            return AckStatus.ERROR, f"{type(exc).__name__}: {exc}", None
        try:
            return AckStatus.OK, "", _HANDLER_RESULT.validate_python(result)
        except ValidationError as exc:
            return (
                AckStatus.ERROR,
                f"the handler's result is not a JSON object: {_schema_problems(exc)}",
                None,
            )

    async def _trust_cloud_key(self, command: Command) -> dict[str, JsonValue]:
        """Trust the key in ``args.public_key`` (id ``args.kid``); the signing key retires at
        ``args.retire_old_at`` (ISO 8601 with a zone, within 90 days of the command)."""
        args = command.args
        try:
            new = load_public_key_b64(str(args["public_key"]))
            retire_at = datetime.fromisoformat(str(args["retire_old_at"]))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"args: expected public_key and retire_old_at: {exc}") from None
        if key_id(new) != args.get("kid"):
            raise ValueError(f"args.kid {args.get('kid')!r} is not the key's thumbprint")
        if retire_at.tzinfo is None or not (
            command.issued_at < retire_at <= command.issued_at + MAX_KEY_OVERLAP
        ):
            raise ValueError(
                f"retire_old_at {retire_at.isoformat()}: expected a zoned instant after "
                f"issued_at and at most {MAX_KEY_OVERLAP.days} days later"
            )
        signed_by = _SIGNED_BY.get()
        self.cloud_keys.trust(new, signed_by, retire_at)
        log.info("cloud key %s trusted; %s retires at %s", key_id(new), signed_by, retire_at)
        return {"trusted": list(self.cloud_keys.kids), "retire_old_at": retire_at.isoformat()}

    def _answer(
        self,
        cmd_id: str,
        status: AckStatus,
        detail: str,
        result: dict[str, JsonValue] | None = None,
    ) -> Ack:
        if status is AckStatus.REFUSED:
            log.warning("command %s refused: %s", cmd_id, detail)
        ack = Ack(
            cmd_id=cmd_id,
            site=self.site,
            gateway=self.gateway,
            status=status,
            detail=detail[:ACK_DETAIL_MAX],
            result=result,
            finished_at=self._clock(),
        )
        self._publish(
            self.ack_topic,
            sign_compact(
                {"alg": "EdDSA", "kid": self.identity.kid},
                ack.to_bytes(),
                self.identity.private_key,
            ),
        )
        return ack

    @staticmethod
    def _drop(reason: str) -> Dropped:
        log.warning("command dropped: %s", reason)
        return Dropped(reason)
