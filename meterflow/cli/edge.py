"""``meterflow edge``: the gateway's commands (keys, polling, status, configuration check,
provisioning) and the field engineer's frame, read and scan commands (:mod:`.field`)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from meterflow.cli.common import fail, load_settings
from meterflow.cli.field import frame_app, read_command, scan_command

if TYPE_CHECKING:
    from edge.config import SiteConfig
    from edge.wire import Topics
    from edge.wire.mqtt import TlsFiles
    from meterflow.settings import Settings

edge_app = typer.Typer(help="Gateway: keys, polling, store-and-forward.", no_args_is_help=True)
edge_app.add_typer(frame_app, name="frame")
edge_app.command("read")(read_command)
edge_app.command("scan")(scan_command)


def _site_path(config: Path | None, data_dir: Path) -> Path:
    """``config``, or the site file ``edge provision`` stored (``DATA_DIR/site.toml``)."""
    if config is not None:
        return config
    path = data_dir / "site.toml"
    if not path.is_file():
        raise fail(
            f"no site configuration: {path} does not exist (MF_DATA_DIR={data_dir}); "
            f"provision this gateway (meterflow edge provision) or give the file's path"
        )
    return path


def _load_site(config: Path) -> SiteConfig:
    """The site file as `edge check` and `edge run` both load it; exit 2 listing every
    problem (one ``error:`` line each) when it does not validate."""
    from edge.config import ConfigError, SiteConfig

    try:
        return SiteConfig.load(config)
    except ConfigError as exc:
        raise fail(str(exc).replace("\n", "\nerror: ")) from None


@edge_app.command("keygen")
def edge_keygen(
    key_file: Annotated[
        Path | None,
        typer.Option(help="private key file, mode 0600 (default: DATA_DIR/gateway.key)"),
    ] = None,
) -> None:
    """Make the gateway's Ed25519 key pair; print the public key and key id for the cloud."""
    from edge.keys import GatewayIdentity, KeyFileError, public_key_b64

    try:
        identity = GatewayIdentity.create(key_file or load_settings().data_dir / "gateway.key")
    except KeyFileError as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps({"kid": identity.kid, "public_key": public_key_b64(identity.public_key)}))


@edge_app.command("run")
def edge_run(
    config: Annotated[
        Path | None,
        typer.Argument(help="site configuration, TOML (default: DATA_DIR/site.toml)"),
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(help="the gateway's private key (default: DATA_DIR/gateway.key)")
    ] = None,
    rounds: Annotated[int, typer.Option(help="stop after this many rounds (0: run on)")] = 0,
) -> None:
    """Poll the site's meters and publish signed readings until stopped (SIGTERM/Ctrl-C).

    After ``edge provision`` it needs no arguments: the site file, key, broker URL, broker
    user and password, topic prefix and the broker's CA come from DATA_DIR (MF_DATA_DIR).
    MF_MQTT_URL, MF_MQTT_USERNAME, MF_MQTT_PASSWORD and MF_TOPIC_PREFIX, when set, win."""
    from edge.keys import GatewayIdentity, KeyFileError
    from edge.provision import ProvisionError
    from edge.runner import StartError, run_gateway

    settings = load_settings()
    config = _site_path(config, settings.data_dir)
    site = _load_site(config)  # the same check as `edge check`
    try:
        identity = GatewayIdentity.load(key_file or settings.data_dir / "gateway.key")
        broker_url, topics, tls = _broker(settings)
    except (KeyFileError, ProvisionError) as exc:
        raise fail(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        asyncio.run(
            run_gateway(
                site,
                identity,
                settings.data_dir,
                broker_url,
                topics=topics,
                tls=tls,
                rounds=rounds or None,
                stop=stop,
                config_path=config,
            )
        )
    except StartError as exc:
        raise fail(str(exc)) from None


def _broker(settings: Settings) -> tuple[str, Topics, TlsFiles | None]:
    """Broker URL (user folded in), topics and TLS files of `edge run`: what ``edge provision``
    stored in DATA_DIR/broker.json, each overridden by its MF_* setting when that is set
    (MF_MQTT_URL alone replaces the stored broker, user included, as before)."""
    from edge.provision import load_broker
    from edge.wire import Topics
    from edge.wire.mqtt import TlsFiles

    explicit = settings.model_fields_set
    prefix = settings.topic_prefix
    stored = None if "mqtt_url" in explicit else load_broker(settings.data_dir)
    if stored is None:
        return settings.broker_url, Topics(prefix), None
    secret = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    url = stored.url(
        settings.mqtt_username if "mqtt_username" in explicit else None,
        secret if "mqtt_password" in explicit else None,
    )
    topics = Topics(prefix if "topic_prefix" in explicit else stored.topic_prefix)
    tls = TlsFiles(str(stored.ca_file)) if stored.ca_file is not None else None
    return url, topics, tls


@edge_app.command("status")
def edge_status(
    as_json: Annotated[bool, typer.Option("--json", help="print the raw status")] = False,
) -> None:
    """Summarise the running (or last) gateway: outbox, lines, meters."""
    from edge.health import format_status, read_status

    path = load_settings().data_dir / "status.json"
    if not path.exists():
        raise fail(f"{path}: no status yet; is `meterflow edge run` running here?")
    health = read_status(path)
    typer.echo(
        health.model_dump_json(by_alias=True, indent=1) if as_json else format_status(health)
    )


@edge_app.command("check")
def edge_check(
    config: Annotated[
        Path | None,
        typer.Argument(help="site configuration, TOML (default: DATA_DIR/site.toml)"),
    ] = None,
) -> None:
    """Validate a site configuration without touching any line: everything `edge run`
    needs; every problem is listed with its file:line and field."""
    config = _site_path(config, load_settings().data_dir)
    site = _load_site(config)
    meters = sum(len(line.meters) for line in site.lines)
    typer.echo(
        f"{config}: site {site.site}, gateway {site.gateway}, {len(site.lines)} "
        f"line(s), {meters} meter(s), {len(site.groups)} group(s)"
    )


#: Where ``edge provision`` takes the claim token from when stdin is not used.
CLAIM_TOKEN_ENV = "MF_CLAIM_TOKEN"


def _claim_token_from_stdin_or_env() -> str:
    """The claim token: ``MF_CLAIM_TOKEN``, else stdin (asked for, unechoed, on a terminal)."""
    import os
    import sys

    token = os.environ.get(CLAIM_TOKEN_ENV, "").strip()
    if not token:
        if sys.stdin is None:
            raise fail(f"no claim token: set {CLAIM_TOKEN_ENV} or pipe it on stdin")
        if sys.stdin.isatty():
            token = typer.prompt("claim token", hide_input=True).strip()
        else:
            token = sys.stdin.readline(1024).strip()
    if not token:
        raise fail(f"no claim token: expected it on stdin or in {CLAIM_TOKEN_ENV}, got nothing")
    return token


@edge_app.command("provision")
def edge_provision(
    cloud: Annotated[str, typer.Argument(help="the cloud's base URL, e.g. https://cloud:8000")],
    token_argument: Annotated[
        str | None, typer.Argument(hidden=True, metavar="", show_default=False)
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="where the gateway keeps its files (default: DATA_DIR, MF_DATA_DIR)"),
    ] = None,
    broker_ca: Annotated[
        Path | None,
        typer.Option(help="the broker's CA certificate (PEM), kept for mqtts:// to a private CA"),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="replace an existing provisioning (old files are moved aside)")
    ] = False,
    allow_http: Annotated[
        bool, typer.Option(help="allow plain http to a non-loopback cloud (trusted networks only)")
    ] = False,
) -> None:
    """Provision this gateway: make its key pair, redeem the claim token, store the config.

    The single-use claim token is read from stdin (asked for on a terminal) or from the
    MF_CLAIM_TOKEN environment variable, never from the command line.
    """
    from edge.provision import ProvisionError, provision

    if token_argument is not None:
        raise fail(
            "the claim token must not be given as an argument (every user of this machine "
            f"sees arguments in ps): pipe it on stdin or set {CLAIM_TOKEN_ENV}, and ask for "
            "a new token, this one may be seen"
        )
    data_dir = data_dir or load_settings().data_dir
    claim_token = _claim_token_from_stdin_or_env()
    try:
        result = provision(
            cloud, claim_token, data_dir, force=force, allow_http=allow_http, broker_ca=broker_ca
        )
    except ProvisionError as exc:
        raise fail(str(exc)) from None
    if result.replaced_dir is not None:
        typer.echo(f"previous files moved to {result.replaced_dir}")
    typer.echo(
        json.dumps(
            {
                "site": result.site,
                "gateway": result.gateway,
                "kid": result.kid,
                "cloud_kid": result.cloud_kid,
                "data_dir": str(data_dir),
                "awaiting_approval": result.awaiting_approval,
            }
        )
    )
    if result.awaiting_approval:
        typer.secho(
            f"note: this replaces gateway {result.gateway!r}; the cloud refuses its readings "
            f"until an admin approves the replacement (等待管理员批准更换后云端才接收读数)",
            err=True,
            fg="yellow",
        )
    if result.config_problem is not None:
        typer.secho(f"error: provisioned, but {result.config_problem}", err=True, fg="red")
        raise typer.Exit(1)
