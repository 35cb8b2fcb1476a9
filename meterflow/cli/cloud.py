"""``meterflow cloud``: the registry, ingest and series store commands, with the web
(:mod:`.web`), apportionment (:mod:`.apportion`), run (:mod:`.runs`), lease (:mod:`.leases`)
and risk (:mod:`.risk`) commands registered under the same group."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer

from meterflow.cli.apportion import apportion_command
from meterflow.cli.close import close_command, site_app
from meterflow.cli.common import fail, load_settings
from meterflow.cli.leases import cloud_bill, cloud_daily
from meterflow.cli.readings import drivers_app, readings_app
from meterflow.cli.risk import risk_app
from meterflow.cli.runs import run_app
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
cloud_app.add_typer(readings_app, name="readings")
cloud_app.add_typer(drivers_app, name="drivers")
cloud_app.add_typer(run_app, name="run")
cloud_app.command("claim-token")(cloud_claim_token)
cloud_app.command("apportion")(apportion_command)
cloud_app.add_typer(site_app, name="site")
cloud_app.command("close")(close_command)
cloud_app.command("bill")(cloud_bill)
cloud_app.command("daily")(cloud_daily)
cloud_app.command("web-account")(cloud_web_account)
cloud_app.command("web-account-disable")(cloud_web_account_disable)
cloud_app.command("web-account-enable")(cloud_web_account_enable)
cloud_app.command("web-account-unlock")(cloud_web_account_unlock)
cloud_app.command("api")(cloud_api)


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
) -> None:
    """Register a gateway's public key so that ingest accepts its envelopes."""
    from cloud.registry.service import RegistryError, register_gateway
    from edge.keys import load_public_key_b64
    from meterflow.assembly import registry

    try:
        key = load_public_key_b64(public_key)
    except ValueError as exc:
        raise fail(f"--public-key: {exc}") from None
    sessions = registry(load_settings())
    try:
        with sessions.begin() as session:
            kid = register_gateway(session, site, gateway, key)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps({"site": site, "gateway": gateway, "kid": kid}))


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
    service = IngestService(
        registry(settings), series_store(settings), Topics(settings.topic_prefix)
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
