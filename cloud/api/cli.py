"""Cloud commands of provisioning: ``meterflow cloud claim-token`` and ``meterflow cloud api``.

Only typer is imported here at module level; the services, FastAPI and SQLAlchemy are
imported when a command runs, so ``meterflow/cli.py`` can register these functions and a
gateway with only ``meterflow[edge]`` installed still starts the ``meterflow`` command.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def cloud_claim_token(
    site: Annotated[str, typer.Option(help="site id")],
    gateway: Annotated[str, typer.Option(help="gateway id")],
    config: Annotated[Path, typer.Option(help="the gateway's site configuration (TOML)")],
    expires_h: Annotated[int, typer.Option(min=1, max=24 * 30,
                                           help="hours the token stays redeemable")] = 24,
    mqtt_url: Annotated[str | None, typer.Option(
        help="broker URL as the gateway reaches it (default: MF_MQTT_URL)")] = None,
    mqtt_username: Annotated[str | None, typer.Option(help="the gateway's broker user")] = None,
    mqtt_password: Annotated[str | None, typer.Option(
        envvar="MF_CLAIM_MQTT_PASSWORD",
        help="the gateway's broker password (prefer the environment variable)")] = None,
) -> None:
    """Issue a single-use claim token for one gateway; the token is printed once, here."""
    from cloud.provisioning import BrokerGrant, CloudSigner, ProvisioningError, ProvisioningService
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    settings = Settings()
    try:
        site_config = config.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{config}: cannot read: {exc.strerror}") from None
    try:
        service = ProvisioningService(
            registry(settings), CloudSigner.load_or_create(settings.data_dir / "cloud.key"))
        claim = service.create_claim(
            site, gateway, site_config,
            BrokerGrant(mqtt_url or settings.mqtt_url, mqtt_username, mqtt_password,
                        settings.topic_prefix),
            ttl=timedelta(hours=expires_h))
    except ProvisioningError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"claim token for gateway {claim.gateway!r} at site {claim.site!r}, valid until "
               f"{claim.expires_at.isoformat(timespec='seconds')}; single use, shown only now:",
               err=True)
    typer.echo(claim.token)


def cloud_api(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port")] = 8000,
) -> None:
    """Serve the cloud API (provisioning; OpenAPI at /openapi.json) until stopped."""
    import uvicorn

    from cloud.api.app import create_app
    from cloud.api.deps import ApiServices
    from cloud.provisioning import CloudKeyError, CloudSigner, ProvisioningService
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    settings = Settings()
    try:
        signer = CloudSigner.load_or_create(settings.data_dir / "cloud.key")
    except CloudKeyError as exc:
        raise _fail(str(exc)) from None
    app = create_app(ApiServices(provisioning=ProvisioningService(registry(settings), signer)))
    uvicorn.run(app, host=host, port=port, log_level="info")
