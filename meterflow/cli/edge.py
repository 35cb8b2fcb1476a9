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

edge_app = typer.Typer(help="Gateway: keys, polling, store-and-forward.", no_args_is_help=True)
edge_app.add_typer(frame_app, name="frame")
edge_app.command("read")(read_command)
edge_app.command("scan")(scan_command)


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
    key_file: Annotated[Path, typer.Option(help="private key file (mode 0600)")] = Path(
        "var/gateway.key"
    ),
) -> None:
    """Make the gateway's Ed25519 key pair; print the public key and key id for the cloud."""
    from edge.keys import GatewayIdentity, KeyFileError, public_key_b64

    try:
        identity = GatewayIdentity.create(key_file)
    except KeyFileError as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps({"kid": identity.kid, "public_key": public_key_b64(identity.public_key)}))


@edge_app.command("run")
def edge_run(
    config: Annotated[Path, typer.Argument(help="site configuration (TOML)")],
    key_file: Annotated[
        Path | None, typer.Option(help="the gateway's private key (default: DATA_DIR/gateway.key)")
    ] = None,
    rounds: Annotated[int, typer.Option(help="stop after this many rounds (0: run on)")] = 0,
) -> None:
    """Poll the site's meters and publish signed readings until stopped (SIGTERM/Ctrl-C).

    The broker and the gateway's broker user come from DATA_DIR/broker.json (written by
    ``edge provision``) unless MF_MQTT_URL is set."""
    from edge.keys import GatewayIdentity, KeyFileError
    from edge.provision import ProvisionError, load_broker_url
    from edge.runner import StartError, run_gateway

    settings = load_settings()
    site = _load_site(config)  # the same check as `edge check`
    try:
        identity = GatewayIdentity.load(key_file or settings.data_dir / "gateway.key")
        provisioned = None
        if "mqtt_url" not in settings.model_fields_set:
            provisioned = load_broker_url(settings.data_dir)
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
                provisioned or settings.broker_url,
                rounds=rounds or None,
                stop=stop,
                config_path=config,
            )
        )
    except StartError as exc:
        raise fail(str(exc)) from None


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
def edge_check(config: Annotated[Path, typer.Argument(help="site configuration (TOML)")]) -> None:
    """Validate a site configuration without touching any line: everything `edge run`
    needs; every problem is listed with its file:line and field."""
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
    data_dir: Annotated[Path, typer.Option(help="where the gateway keeps its files")] = Path("var"),
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
    claim_token = _claim_token_from_stdin_or_env()
    try:
        result = provision(cloud, claim_token, data_dir, force=force, allow_http=allow_http)
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
