"""Commands from the engineer pages to gateways: sign (:mod:`cloud.gateways.commands`),
record, publish, and record the gateways' verified answers.

Publishing goes through a callable ``publish(topic, envelope)`` (the MQTT link of
:mod:`cloud.gateways.feed` in the running API, a recorder in tests). A command is recorded
``sent`` once published (``unsent`` when the broker could not be reached) and ``ok``,
``error`` or ``refused`` when the gateway's signed answer arrives on ``up/ack``.

Each command is signed with the newest live command key its gateway trusts
(:mod:`cloud.gateways.command_keys`); ``trust_cloud_key`` is sent only by
:meth:`CommandDispatch.send_new_key` (``meterflow cloud rotate-command-key``), never from the
engineer pages, and a gateway's ``ok`` answer to it records that it trusts the new key.

Pushing a configuration is the ``reload_config`` command: the gateway re-reads its site
configuration file and restarts polling with it when it is valid and names the same site
and gateway (``edge.runner``); the command set has no way to carry the file's content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import JsonValue
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.command_keys import CommandKeyError, CommandKeyRing, Rotation
from cloud.gateways.commands import CommandError, issue_command, verify_ack
from cloud.gateways.models import GatewayCommandRecord, GatewayCommandTrust
from cloud.gateways.provisioning import CloudSigner, CommandKeys
from cloud.gateways.revocation import live_kids
from cloud.registry.models import Gateway, GatewayKey
from cloud.staff.accounts import Principal, Role
from cloud.staff.audit import record
from edge.wire import (
    DEFAULT_TOPIC_PREFIX,
    MAX_COMMAND_TTL,
    Ack,
    Clock,
    CommandName,
    Topics,
    utc_now,
)

Publish = Callable[[str, bytes], None]


class DispatchError(Exception):
    """A command that cannot be sent: unknown gateway, unknown command, broker down."""


class UnknownGatewayTarget(DispatchError):
    """No such gateway in the principal's scope."""


class CommandNotAllowed(DispatchError):
    """A command the engineer pages may not send (``trust_cloud_key``)."""


class NoTrustedKey(DispatchError):
    """The gateway trusts none of the live command keys (it missed a rotation)."""


class GatewayRevoked(DispatchError):
    """The gateway holds no live key (revoked, decision 0043): nothing is sent to it."""


#: The principal that sends the rotation's ``trust_cloud_key`` commands.
KEY_ROTATION = Principal("rotate-command-key", Role.ADMIN, frozenset())


@dataclass(frozen=True)
class SentCommand:
    """A command as sent: its id (the answer names it), status and topic."""

    cmd_id: str
    gateway: str
    command: str
    status: str
    topic: str


class CommandDispatch:
    """Signs, records and publishes commands; records their answers."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        signer: CloudSigner | CommandKeys,
        publish: Publish,
        clock: Clock = utc_now,
        prefix: str = DEFAULT_TOPIC_PREFIX,
    ) -> None:
        self.sessions = sessions
        if isinstance(signer, CommandKeyRing):
            self.keys = signer
        else:  # a cloud key alone, or provisioning's stand-in for a cloud that never rotated
            base = signer if isinstance(signer, CloudSigner) else signer.base
            self.keys = CommandKeyRing(sessions, base, clock=clock)
        self.publish = publish
        self.clock = clock
        self.prefix = prefix

    def send(
        self,
        who: Principal,
        gateway_id: str,
        command: str,
        args: dict[str, JsonValue] | None = None,
        ttl_s: float = 300,
    ) -> SentCommand:
        """Send ``command`` to a gateway in the principal's scope."""
        if command == CommandName.TRUST_CLOUD_KEY and who is not KEY_ROTATION:
            raise CommandNotAllowed(
                "trust_cloud_key is sent only by meterflow cloud rotate-command-key"
            )
        with self.sessions() as session:
            gateway = session.get(Gateway, gateway_id)
            if gateway is None or not who.may_act_on(gateway.site_id):
                raise UnknownGatewayTarget(f"no gateway {gateway_id!r}")
            site = gateway.site_id
            if not live_kids(session, gateway_id):
                raise GatewayRevoked(
                    f"gateway {gateway_id!r} is revoked: no command is sent to it; new "
                    f"hardware for it comes by a replacement claim"
                )
            try:
                signer = self.keys.signer_for(session, gateway_id)
            except CommandKeyError as exc:
                raise NoTrustedKey(str(exc)) from None
        try:
            signed = issue_command(signer, site, gateway_id, command, args, ttl_s, now=self.clock)
        except CommandError as exc:
            raise DispatchError(str(exc)) from None
        topic = Topics(self.prefix).command(site, gateway_id)
        try:
            self.publish(topic, signed.envelope)
            status, detail = "sent", ""
        except OSError as exc:
            status, detail = "unsent", f"broker not reachable: {exc}"
        now = self.clock()
        with self.sessions.begin() as session:
            session.add(
                GatewayCommandRecord(
                    cmd_id=signed.cmd_id,
                    site_id=site,
                    gateway_id=gateway_id,
                    command=command,
                    args=dict(args or {}),
                    issued_by=who.username,
                    issued_at=now,
                    expires_at=signed.expires_at,
                    status=status,
                    detail=detail,
                )
            )
            record(
                session,
                at=now,
                actor=who.username,
                action=command,
                subject=f"gateway:{gateway_id}",
                detail=f"{signed.cmd_id} {status} {detail}",
            )
        if status == "unsent":
            raise DispatchError(detail)
        return SentCommand(signed.cmd_id, gateway_id, command, status, topic)

    def take_ack(self, envelope: bytes) -> Ack:
        """Verify a gateway's answer and record it on its command (CommandError if forged);
        an ``ok`` to ``trust_cloud_key`` records that the gateway trusts the new key."""
        with self.sessions.begin() as session:
            ack = verify_ack(session, envelope)
            row = session.get(GatewayCommandRecord, ack.cmd_id)
            if row is not None and row.gateway_id == ack.gateway:
                row.status, row.detail = ack.status, ack.detail[:2000]
                row.answered_at = ack.finished_at
                if row.command == CommandName.TRUST_CLOUD_KEY and ack.status == "ok":
                    self.keys.confirm(session, row.gateway_id, str(row.args["kid"]))
        return ack

    def send_new_key(self, rotation: Rotation, *, only_unconfirmed: bool = True) -> dict[str, str]:
        """Send ``trust_cloud_key`` for ``rotation.new`` to every gateway holding a live key
        (``only_unconfirmed``: that has not confirmed it yet), each signed with a key it
        trusts; return gateway → command id, or why it could not be sent."""
        with self.sessions() as session:
            gateways = sorted(
                set(
                    session.scalars(
                        select(GatewayKey.gateway_id).where(GatewayKey.revoked_at.is_(None))
                    )
                )
            )
            confirmed = set(
                session.scalars(
                    select(GatewayCommandTrust.gateway_id).where(
                        GatewayCommandTrust.kid == rotation.new.kid
                    )
                )
            )
        sent: dict[str, str] = {}
        ttl_s = min(
            MAX_COMMAND_TTL.total_seconds(),
            max(1.0, (rotation.retires_at - self.clock()).total_seconds()),
        )
        args: dict[str, JsonValue] = {
            "kid": rotation.new.kid,
            "public_key": rotation.new.public_key_b64,
            "retire_old_at": rotation.retires_at.isoformat(),
        }
        for gateway in gateways:
            if only_unconfirmed and gateway in confirmed:
                continue
            try:
                sent[gateway] = self.send(
                    KEY_ROTATION, gateway, CommandName.TRUST_CLOUD_KEY, args, ttl_s
                ).cmd_id
            except DispatchError as exc:
                sent[gateway] = f"not sent: {exc}"
        return sent
