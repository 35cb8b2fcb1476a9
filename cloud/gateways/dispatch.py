"""Commands from the engineer pages to gateways: sign (:mod:`cloud.gateways.commands`),
record, publish, and record the gateways' verified answers.

Publishing goes through a callable ``publish(topic, envelope)`` (the MQTT link of
:mod:`cloud.gateways.feed` in the running API, a recorder in tests). A command is recorded
``sent`` once published (``unsent`` when the broker could not be reached) and ``ok``,
``error`` or ``refused`` when the gateway's signed answer arrives on ``up/ack``.

Pushing a configuration is the ``reload_config`` command: the gateway re-reads its site
configuration file and restarts polling with it when it is valid and names the same site
and gateway (``edge.runner``); the command set has no way to carry the file's content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import JsonValue
from sqlalchemy.orm import Session, sessionmaker

from cloud.gateways.commands import CommandError, issue_command, verify_ack
from cloud.gateways.models import GatewayCommandRecord
from cloud.gateways.provisioning import CloudSigner
from cloud.registry.models import Gateway
from cloud.staff.accounts import Principal
from cloud.staff.audit import record
from edge.wire import DEFAULT_TOPIC_PREFIX, Ack, Clock, Topics, utc_now

Publish = Callable[[str, bytes], None]


class DispatchError(Exception):
    """A command that cannot be sent: unknown gateway, unknown command, broker down."""


class UnknownGatewayTarget(DispatchError):
    """No such gateway in the principal's scope."""


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
        signer: CloudSigner,
        publish: Publish,
        clock: Clock = utc_now,
        prefix: str = DEFAULT_TOPIC_PREFIX,
    ) -> None:
        self.sessions = sessions
        self.signer = signer
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
        with self.sessions() as session:
            gateway = session.get(Gateway, gateway_id)
            if gateway is None or not who.may_act_on(gateway.site_id):
                raise UnknownGatewayTarget(f"no gateway {gateway_id!r}")
            site = gateway.site_id
        try:
            signed = issue_command(
                self.signer, site, gateway_id, command, args, ttl_s, now=self.clock
            )
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
        """Verify a gateway's answer and record it on its command (CommandError if forged)."""
        with self.sessions.begin() as session:
            ack = verify_ack(session, envelope)
            row = session.get(GatewayCommandRecord, ack.cmd_id)
            if row is not None and row.gateway_id == ack.gateway:
                row.status, row.detail = ack.status, ack.detail[:2000]
                row.answered_at = ack.finished_at
        return ack
