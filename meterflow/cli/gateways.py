"""``meterflow cloud``'s gateway-trust commands: ``rotate-command-key`` and ``command-keys``
(the cloud's command-signing keys, decision 0018), ``replacement`` (new hardware awaiting an
admin), ``purge-claim-tokens`` and ``gateway revoke`` (a lost or stolen gateway, decision
0043).

Only typer is imported at module level (see :mod:`meterflow.cli.web`).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from meterflow.cli.common import acting_as, fail, load_settings

if TYPE_CHECKING:
    from cloud.gateways.command_keys import CommandKeyRing
    from cloud.gateways.dispatch import CommandDispatch
    from meterflow.settings import Settings

replacement_app = typer.Typer(
    help="New hardware for provisioned gateways, awaiting an admin.", no_args_is_help=True
)
gateway_app = typer.Typer(help="Gateways: revoke a lost or stolen one.", no_args_is_help=True)


def _ring(settings: Settings) -> CommandKeyRing:
    from cloud.gateways.command_keys import CommandKeyRing
    from cloud.gateways.provisioning import CloudKeyError, CloudSigner
    from meterflow.assembly import registry

    try:
        base = CloudSigner.load_or_create(settings.data_dir / "cloud.key")
    except CloudKeyError as exc:
        raise fail(str(exc)) from None
    return CommandKeyRing(registry(settings), base, settings.data_dir)


class _OneShotBroker:
    """A broker connection that publishes commands at QoS 1 and waits for each PUBACK."""

    def __init__(self, broker_url: str) -> None:
        from edge.wire.mqtt import BrokerAddress, mqtt_client

        self.broker = BrokerAddress.parse(broker_url)
        self.client = mqtt_client(self.broker, "mf-rotate-command-key", clean_session=True)

    def __enter__(self) -> _OneShotBroker:
        try:
            self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        except OSError as exc:
            raise fail(
                f"cannot reach the broker at {self.broker.host}:{self.broker.port}: {exc}"
            ) from None
        self.client.loop_start()
        return self

    def publish(self, topic: str, body: bytes) -> None:
        info = self.client.publish(topic, body, qos=1)
        info.wait_for_publish(10)
        if not info.is_published():
            raise OSError(f"no PUBACK for {topic} within 10 s")

    def __exit__(self, *_exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _dispatch(settings: Settings, ring: CommandKeyRing, broker: _OneShotBroker) -> CommandDispatch:
    from cloud.gateways.dispatch import CommandDispatch

    return CommandDispatch(ring.sessions, ring, broker.publish, prefix=settings.topic_prefix)


def rotate_command_key(
    overlap_hours: Annotated[
        int,
        typer.Option(
            min=1, max=90 * 24, help="hours both keys are trusted; the old key retires after"
        ),
    ] = 7 * 24,
    send: Annotated[
        bool, typer.Option(help="send the new key to every gateway now (MF_MQTT_URL)")
    ] = True,
) -> None:
    """Make a new command-signing key; gateways trust both until the old one retires.

    Each gateway is sent the new key in a command signed with the key it trusts now; its
    answer (taken by ``meterflow cloud api``) records that it trusts the new one. Gateways
    that were offline: ``meterflow cloud command-keys --resend`` before the overlap ends.
    """
    from cloud.gateways.command_keys import CommandKeyError

    settings = load_settings()
    ring = _ring(settings)
    try:
        rotation = ring.rotate(timedelta(hours=overlap_hours))
    except CommandKeyError as exc:
        raise fail(str(exc)) from None
    sent: dict[str, str] = {}
    if send:
        with _OneShotBroker(settings.broker_url) as broker:
            sent = _dispatch(settings, ring, broker).send_new_key(rotation)
    typer.echo(
        json.dumps(
            {
                "new_kid": rotation.new.kid,
                "old_kid": rotation.old_kid,
                "old_retires_at": rotation.retires_at.isoformat(),
                "sent": sent,
            },
            indent=1,
        )
    )


def command_keys(
    resend: Annotated[
        bool,
        typer.Option(help="send the newest key again to gateways that have not confirmed it"),
    ] = False,
    retire: Annotated[
        bool, typer.Option(help="delete the private files of keys past their retirement")
    ] = False,
) -> None:
    """List the command-signing keys: created, retires at, live, gateways trusting each."""
    from cloud.gateways.command_keys import Rotation

    settings = load_settings()
    ring = _ring(settings)
    states = ring.states()
    out: dict[str, object] = {
        "keys": [
            {
                "kid": s.kid,
                "created_at": s.created_at.isoformat(),
                "retires_at": None if s.retires_at is None else s.retires_at.isoformat(),
                "live": s.live,
                "gateways": s.gateways,
            }
            for s in states
        ]
    }
    if resend:
        previous = [s for s in states if s.retires_at is not None and s.live]
        if not previous:
            raise fail("no rotation is under way: there is no new key to send again")
        with ring.sessions() as session:
            newest = ring.current(session)
        rotation = Rotation(previous[-1].kid, newest, previous[-1].retires_at)  # type: ignore[arg-type]
        with _OneShotBroker(settings.broker_url) as broker:
            out["sent"] = _dispatch(settings, ring, broker).send_new_key(rotation)
    if retire:
        out["retired"] = ring.retire_expired()
    typer.echo(json.dumps(out, indent=1))


def purge_claim_tokens(
    older_than_h: Annotated[
        int, typer.Option(min=0, help="delete tokens used or expired at least this long ago")
    ] = 7 * 24,
) -> None:
    """Delete used and expired claim tokens (each claim issued or redeemed does it too)."""
    from cloud.gateways.provisioning import ProvisioningService

    settings = load_settings()
    ring = _ring(settings)
    count = ProvisioningService(ring.sessions, ring.base).purge_claims(
        older_than=timedelta(hours=older_than_h)
    )
    typer.echo(f"{count} claim token(s) deleted", err=True)


def _replacements(settings: Settings):  # type: ignore[no-untyped-def]
    from cloud.gateways.replacement import ReplacementService

    ring = _ring(settings)
    return ReplacementService(ring.sessions, ring)


@replacement_app.command("list")
def replacement_list(
    all_: Annotated[bool, typer.Option("--all", help="decided ones too")] = False,
) -> None:
    """Replacements awaiting approval (newest first), as JSON lines."""
    for view in _replacements(load_settings()).listing(pending_only=not all_):
        typer.echo(
            json.dumps(
                {
                    "id": view.id,
                    "site": view.site,
                    "gateway": view.gateway,
                    "kid": view.kid,
                    "requested_by": view.requested_by,
                    "requested_at": view.requested_at.isoformat(),
                    "status": view.status,
                }
            )
        )


def _decide(replacement_id: int, approve: bool) -> None:
    import getpass

    from cloud.gateways.replacement import ReplacementError

    service = _replacements(load_settings())
    admin = f"cli:{getpass.getuser()}"
    try:
        view = (service.approve if approve else service.reject)(replacement_id, admin)
    except ReplacementError as exc:
        raise fail(str(exc)) from None
    typer.echo(
        json.dumps(
            {
                "id": view.id,
                "gateway": view.gateway,
                "status": view.status,
                "revoked": list(view.revoked),
            }
        )
    )


@replacement_app.command("approve")
def replacement_approve(
    replacement_id: Annotated[int, typer.Argument(help="the replacement's id (list shows it)")],
) -> None:
    """Approve: register the new hardware's key and revoke the gateway's old keys."""
    _decide(replacement_id, approve=True)


@replacement_app.command("reject")
def replacement_reject(
    replacement_id: Annotated[int, typer.Argument(help="the replacement's id (list shows it)")],
) -> None:
    """Reject: the new hardware's key is never accepted; the old one stays."""
    _decide(replacement_id, approve=False)


@gateway_app.command("revoke")
def gateway_revoke(
    gateway: Annotated[str, typer.Argument(help="the gateway's id")],
    reason: Annotated[
        str, typer.Option(help="lost, stolen, decommissioned or other (other needs --note)")
    ],
    note: Annotated[str, typer.Option(help="why, in a few words (at most 500 characters)")] = "",
    account: Annotated[
        str | None,
        typer.Option("--as", help="act as this staff account (engineer of the site, or admin)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """Revoke every live key of a lost, stolen or decommissioned gateway: its readings,
    health and answers are refused from now on, its unused claim tokens expire and commands
    awaiting its answer are cancelled. Revoking a revoked gateway changes nothing (exit 0).
    Its broker user stays until the broker's admin removes it (broker-users.sh remove)."""
    from cloud.gateways.health import UnknownGateway
    from cloud.gateways.revocation import GatewayRevocations, RevocationRefused
    from meterflow.assembly import registry

    sessions = registry(load_settings())
    who = acting_as(sessions, account)
    try:
        done = GatewayRevocations(sessions).revoke(who, gateway, reason, note)
    except (PermissionError, UnknownGateway, RevocationRefused) as exc:
        raise fail(str(exc)) from None
    r = done.revocation
    broker = f"deploy/mosquitto/broker-users.sh remove {gateway}"
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "gateway": gateway,
                    "changed": done.changed,
                    "reason": r and r.reason,
                    "note": r and r.note,
                    "revoked_by": r and r.revoked_by,
                    "revoked_at": r and r.revoked_at.isoformat(),
                    "kids": r.kids if r else [],
                    "claims_closed": done.claims_closed,
                    "commands_cancelled": done.commands_cancelled,
                    "broker_user": f"not removed by the cloud: {broker}",
                },
                indent=1,
            )
        )
        return
    if not done.changed:
        earlier = f" ({r.reason}, by {r.revoked_by} at {r.revoked_at.isoformat()})" if r else ""
        typer.echo(f"gateway {gateway} was revoked already{earlier}; nothing changed")
        return
    assert r is not None
    typer.echo(
        f"gateway {gateway} revoked ({r.reason}) by {r.revoked_by} at "
        f"{r.revoked_at.isoformat()}: key(s) {', '.join(r.kids)}; "
        f"{done.claims_closed} claim token(s) closed, "
        f"{done.commands_cancelled} command(s) cancelled"
    )
    typer.echo(
        f"its broker user is not the cloud's to remove: on the broker host run {broker} "
        f"and reload mosquitto",
        err=True,
    )
