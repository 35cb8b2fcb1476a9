"""The ``meterflow`` command: groups ``edge``, ``cloud``, ``sim`` and the ``demo``.

Each command imports what it needs when it runs, so a gateway with only ``meterflow[edge]``
installed never imports the cloud's dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from edge.provision import edge_provision
from meterflow.cli.apportion import apportion_command
from meterflow.cli.field import frame_app, read_command, scan_command
from meterflow.cli.leases import cloud_bill, cloud_daily
from meterflow.cli.risk import risk_app
from meterflow.cli.web import cloud_api, cloud_claim_token, cloud_web_account

app = typer.Typer(
    help="meterflow: metering gateway and utility-billing cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
edge_app = typer.Typer(help="Gateway: keys, polling, store-and-forward.", no_args_is_help=True)
cloud_app = typer.Typer(help="Cloud: registry, ingest, series store.", no_args_is_help=True)
sim_app = typer.Typer(help="Simulated meters speaking the real protocols.", no_args_is_help=True)
edge_app.add_typer(frame_app, name="frame")
edge_app.command("read")(read_command)
edge_app.command("provision")(edge_provision)
edge_app.command("scan")(scan_command)
app.add_typer(edge_app, name="edge")
cloud_app.add_typer(risk_app, name="risk")
app.add_typer(cloud_app, name="cloud")
app.add_typer(sim_app, name="sim")


def _settings():  # type: ignore[no-untyped-def]
    from meterflow.settings import Settings

    return Settings()


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


# ---------------------------------------------------------------- edge


@edge_app.command("keygen")
def edge_keygen(
    key_file: Annotated[Path, typer.Option(help="private key file (mode 0600)")] = Path(
        "var/gateway.key"
    ),
) -> None:
    """Make the gateway's Ed25519 key pair; print the public key and key id for the cloud."""
    from edge.keys import GatewayIdentity, KeyFileError, public_key_b64

    try:
        identity = GatewayIdentity.create(key_file)
    except KeyFileError as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps({"kid": identity.kid, "public_key": public_key_b64(identity.public_key)}))


@edge_app.command("run")
def edge_run(
    config: Annotated[Path, typer.Argument(help="site configuration (TOML)")],
    key_file: Annotated[
        Path | None, typer.Option(help="the gateway's private key (default: DATA_DIR/gateway.key)")
    ] = None,
    rounds: Annotated[int, typer.Option(help="stop after this many rounds (0: run on)")] = 0,
) -> None:
    """Poll the site's meters and publish signed readings until stopped (SIGTERM/Ctrl-C)."""
    from edge.config import ConfigError, SiteConfig
    from edge.keys import GatewayIdentity, KeyFileError
    from edge.runner import run_gateway

    settings = _settings()
    try:
        site = SiteConfig.load(config)
        identity = GatewayIdentity.load(key_file or settings.data_dir / "gateway.key")
    except (ConfigError, KeyFileError) as exc:
        raise _fail(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    asyncio.run(
        run_gateway(
            site,
            identity,
            settings.data_dir,
            settings.broker_url,
            rounds=rounds or None,
            stop=stop,
            config_path=config,
        )
    )


@edge_app.command("status")
def edge_status(
    as_json: Annotated[bool, typer.Option("--json", help="print the raw status")] = False,
) -> None:
    """Summarise the running (or last) gateway: outbox, lines, meters."""
    from edge.health import format_status, read_status

    path = _settings().data_dir / "status.json"
    if not path.exists():
        raise _fail(f"{path}: no status yet; is `meterflow edge run` running here?")
    health = read_status(path)
    typer.echo(
        health.model_dump_json(by_alias=True, indent=1) if as_json else format_status(health)
    )


@edge_app.command("check")
def edge_check(config: Annotated[Path, typer.Argument(help="site configuration (TOML)")]) -> None:
    """Validate a site configuration and its polling plan without touching any line."""
    from edge.config import ConfigError, SiteConfig

    try:
        site = SiteConfig.load(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    meters = sum(len(line.meters) for line in site.lines)
    typer.echo(
        f"{config}: site {site.site}, gateway {site.gateway}, {len(site.lines)} "
        f"line(s), {meters} meter(s), {len(site.groups)} group(s)"
    )


# ---------------------------------------------------------------- cloud


cloud_app.command("claim-token")(cloud_claim_token)
cloud_app.command("apportion")(apportion_command)
cloud_app.command("bill")(cloud_bill)
cloud_app.command("daily")(cloud_daily)
cloud_app.command("web-account")(cloud_web_account)
cloud_app.command("api")(cloud_api)


@cloud_app.command("migrate")
def cloud_migrate() -> None:
    """Create or upgrade the registry schema (Alembic)."""
    from meterflow.assembly import registry

    settings = _settings()
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
        raise _fail(f"--public-key: {exc}") from None
    sessions = registry(_settings())
    try:
        with sessions.begin() as session:
            kid = register_gateway(session, site, gateway, key)
    except RegistryError as exc:
        raise _fail(str(exc)) from None
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

    settings = _settings()
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

    s = _settings()
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
        raise _fail(str(exc)) from None
    typer.echo(f"InfluxDB {report.version} at {s.influx_url}:")
    for action in report.actions:
        typer.echo(f"  {action}")


# ---------------------------------------------------------------- sim


@sim_app.command("portfolio")
def sim_portfolio(
    buildings: Annotated[int, typer.Option(min=1, max=1000)] = 6,
    units_per_building: Annotated[int, typer.Option(min=1, max=10_000)] = 80,
    days: Annotated[int, typer.Option(min=120, max=3650, help="days of history")] = 760,
    start: Annotated[str, typer.Option(help="first day of the history, YYYY-MM-DD")] = "2024-11-01",
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Write a simulated lease portfolio with daily use into the configured registry and
    series store (behaviour: docs/vacancy.md), to try `meterflow cloud risk ...` on."""
    from datetime import date

    from sqlalchemy import func, select

    from cloud.leases.models import Lease
    from meterflow.assembly import registry, series_store
    from meterflow.scenarios.portfolio import PortfolioSpec, generate_portfolio

    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise _fail(f"--start {start!r}: expected YYYY-MM-DD") from None
    settings = _settings()
    sessions = registry(settings)
    with sessions() as session:
        if session.scalar(select(func.count()).select_from(Lease)):
            raise _fail(
                f"{settings.registry_url} already holds leases; the simulated "
                "portfolio goes into an empty registry (set MF_DATA_DIR)"
            )
    store = series_store(settings)
    try:
        summary = generate_portfolio(
            sessions,
            store,
            PortfolioSpec(
                start=first,
                days=days,
                buildings=buildings,
                units_per_building=units_per_building,
                seed=seed,
            ),
        )
    finally:
        store.close()
    typer.echo(
        json.dumps(
            {
                "units": summary.units,
                "leases": summary.leases,
                "tenants": summary.tenants,
                "points": summary.points,
                "invoices": summary.invoices,
                "tickets": summary.tickets,
                "now": summary.now.isoformat(),
            }
        )
    )


@sim_app.command("dlt645")
def sim_dlt645(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0: any free one)")] = 0,
    meters: Annotated[int, typer.Option(min=1, max=254, help="meters on the line")] = 8,
    seed: Annotated[int, typer.Option(help="load model seed")] = 1,
) -> None:
    """Serve a line of simulated DL/T645-2007 meters on TCP until stopped."""
    from simulators.load import SystemClock
    from simulators.site import demo_line, demo_meter_tree, serve_line_forever

    tree = demo_meter_tree(meters)
    for m in tree:
        typer.echo(f"{m.id} address {m.address} {m.role} parent {m.parent or '-'}")
    line = demo_line(tree, SystemClock(), seed=seed)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_line_forever(line, "127.0.0.1", port))


# ---------------------------------------------------------------- demo


@app.command("demo")
def demo(
    meters: Annotated[int, typer.Option(min=1, max=64, help="simulated meters on one line")] = 8,
    rounds: Annotated[int, typer.Option(min=1, max=1000, help="polling rounds to run")] = 6,
    interval_min: Annotated[int, typer.Option(min=1, help="simulated minutes between rounds")] = 15,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its files (wiped first)")] = (
        Path("var/demo")
    ),
) -> None:
    """Run the whole path on embedded defaults: simulated DL/T645 meters → gateway → signed
    envelopes → in-process MQTT broker → cloud ingest → SQLite series store.

    Needs no root and no servers. Prints progress, then one JSON line with the counts.
    """
    from meterflow.demo import run_demo

    summary = run_demo(
        meters=meters, rounds=rounds, interval_min=interval_min, data_dir=data_dir, echo=typer.echo
    )
    typer.echo(json.dumps(summary))
    if summary["rejected"] or not summary["readings_stored"]:
        raise typer.Exit(1)


def main() -> None:
    app()
