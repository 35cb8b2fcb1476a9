"""``meterflow cloud``: the registry, ingest and series store commands, with the web
(:mod:`.web`), apportionment (:mod:`.apportion`), run (:mod:`.runs`), lease (:mod:`.leases`)
risk (:mod:`.risk`) and report (:mod:`.reports`) commands registered under the same group."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer

from meterflow.cli.apportion import apportion_command
from meterflow.cli.bank import bank_app, credit_note_app
from meterflow.cli.close import close_command, site_app
from meterflow.cli.common import fail, load_settings
from meterflow.cli.cpi import cpi_app
from meterflow.cli.dead_letters import dead_letters_app, ingest_limits
from meterflow.cli.deposits import deposit_app
from meterflow.cli.gateways import (
    command_keys,
    gateway_app,
    purge_claim_tokens,
    replacement_app,
    rotate_command_key,
)
from meterflow.cli.leases import cloud_bill, cloud_daily, cloud_payment
from meterflow.cli.ledger import lease_app, ledger_app
from meterflow.cli.policies import policy_app
from meterflow.cli.queue import offer_app, queue_app
from meterflow.cli.readings import drivers_app, readings_app
from meterflow.cli.reports import report_app
from meterflow.cli.risk import risk_app
from meterflow.cli.runs import run_app
from meterflow.cli.staff import staff_app
from meterflow.cli.web import (
    cloud_api,
    cloud_claim_token,
    cloud_web_account,
    cloud_web_account_disable,
    cloud_web_account_enable,
    cloud_web_account_unlock,
)

cloud_app = typer.Typer(help="Cloud: registry, ingest, series store.", no_args_is_help=True)
cloud_app.add_typer(risk_app, name="risk")
cloud_app.add_typer(report_app, name="report")
cloud_app.add_typer(readings_app, name="readings")
cloud_app.add_typer(drivers_app, name="drivers")
cloud_app.add_typer(run_app, name="run")
cloud_app.add_typer(dead_letters_app, name="dead-letters")
cloud_app.command("claim-token")(cloud_claim_token)
cloud_app.command("apportion")(apportion_command)
cloud_app.add_typer(site_app, name="site")
cloud_app.command("close")(close_command)
cloud_app.command("bill")(cloud_bill)
cloud_app.command("daily")(cloud_daily)
cloud_app.command("payment")(cloud_payment)
cloud_app.add_typer(queue_app, name="queue")
cloud_app.add_typer(offer_app, name="offer")
cloud_app.add_typer(deposit_app, name="deposit")
cloud_app.add_typer(policy_app, name="policy")
cloud_app.command("web-account")(cloud_web_account)
cloud_app.command("web-account-disable")(cloud_web_account_disable)
cloud_app.command("web-account-enable")(cloud_web_account_enable)
cloud_app.command("web-account-unlock")(cloud_web_account_unlock)
cloud_app.command("api")(cloud_api)
cloud_app.command("rotate-command-key")(rotate_command_key)
cloud_app.command("command-keys")(command_keys)
cloud_app.command("purge-claim-tokens")(purge_claim_tokens)
cloud_app.add_typer(replacement_app, name="replacement")
cloud_app.add_typer(gateway_app, name="gateway")
cloud_app.add_typer(ledger_app, name="ledger")
cloud_app.add_typer(lease_app, name="lease")
cloud_app.add_typer(staff_app, name="staff")
cloud_app.add_typer(bank_app, name="bank")
cloud_app.add_typer(credit_note_app, name="credit-note")
cloud_app.add_typer(cpi_app, name="cpi")


@cloud_app.command("migrate")
def cloud_migrate() -> None:
    """Create or upgrade the registry schema (Alembic)."""
    from meterflow.assembly import registry

    settings = load_settings()
    registry(settings)
    typer.echo(f"registry at newest schema: {settings.registry_url}")


@cloud_app.command("register-gateway")
def cloud_register_gateway(
    site: Annotated[str, typer.Option(help="site id")],
    gateway: Annotated[str, typer.Option(help="gateway id")],
    public_key: Annotated[str, typer.Option(help="base64url Ed25519 public key (keygen)")],
    replace: Annotated[
        bool,
        typer.Option(help="new hardware for a registered gateway: revoke its other keys"),
    ] = False,
) -> None:
    """Register a gateway's public key so that ingest accepts its envelopes.

    A gateway that holds a live key gets another only with --replace, which revokes the old;
    so does a revoked gateway (``gateway revoke``).
    """
    from datetime import UTC, datetime

    from cloud.gateways.revocation import REPLACED, live_kids, revoke_keys
    from cloud.registry.models import Gateway
    from cloud.registry.service import RegistryError, register_gateway
    from edge.keys import key_id, load_public_key_b64
    from meterflow.assembly import registry

    try:
        key = load_public_key_b64(public_key)
    except ValueError as exc:
        raise fail(f"--public-key: {exc}") from None
    sessions = registry(load_settings())
    revoked: list[str] = []
    try:
        with sessions.begin() as session:
            live = live_kids(session, gateway)
            if live and key_id(key) not in live and not replace:
                raise fail(
                    f"gateway {gateway!r} holds live key {live[0]}; registering new hardware "
                    f"for it is a replacement: add --replace (its other keys are revoked)"
                )
            if not live and not replace and session.get(Gateway, gateway) is not None:
                raise fail(
                    f"gateway {gateway!r} was revoked; bringing it back with new hardware is "
                    f"a replacement: add --replace"
                )
            kid = register_gateway(session, site, gateway, key)
            if replace:
                revoked = revoke_keys(
                    session,
                    gateway,
                    datetime.now(UTC),
                    reason=REPLACED,
                    actor="cli",
                    origin="cli",
                    keep=kid,
                )
    except RegistryError as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps({"site": site, "gateway": gateway, "kid": kid, "revoked": revoked}))


@cloud_app.command("ingest")
def cloud_ingest(
    share_group: Annotated[str | None, typer.Option(help="shared subscription group")] = None,
    client_id: Annotated[str, typer.Option(help="MQTT client id")] = "mf-ingest-1",
) -> None:
    """Subscribe to every gateway's readings, verify and store them until stopped."""
    from cloud.ingest.service import IngestService
    from cloud.ingest.worker import IngestWorker
    from edge.wire import Topics
    from meterflow.assembly import registry, series_store

    settings = load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    window, quota = ingest_limits(settings)
    service = IngestService(
        registry(settings),
        series_store(settings),
        Topics(settings.topic_prefix),
        window=window,
        quota=quota,
    )
    IngestWorker(
        service, settings.broker_url, client_id=client_id, share_group=share_group
    ).run_forever()


@cloud_app.command("influx-setup")
def cloud_influx_setup() -> None:
    """Prepare the configured InfluxDB: database (1.x) or bucket + DBRP mapping (2.x)."""
    from cloud.series.base import SeriesStoreError
    from cloud.series.influx_setup import influx_setup

    s = load_settings()
    try:
        report = influx_setup(
            s.influx_url,
            s.influx_bucket,
            token=s.influx_token.get_secret_value() if s.influx_token else None,
            org=s.influx_org,
            username=s.influx_username,
            password=s.influx_password.get_secret_value() if s.influx_password else None,
        )
    except SeriesStoreError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"InfluxDB {report.version} at {s.influx_url}:")
    for action in report.actions:
        typer.echo(f"  {action}")
