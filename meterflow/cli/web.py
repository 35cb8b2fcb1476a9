"""Cloud commands of provisioning and the web: ``meterflow cloud claim-token``,
``meterflow cloud api`` (API, pages and the gateway feed), ``meterflow cloud web-account`` and
``web-account-disable``, ``-enable`` and ``-unlock``.

Only typer is imported here at module level; the services, FastAPI and SQLAlchemy are
imported when a command runs, so ``meterflow/cli/cloud.py`` can register these functions and a
gateway with only ``meterflow[edge]`` installed still starts the ``meterflow`` command.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from meterflow.cli.common import fail

if TYPE_CHECKING:
    from cloud.staff.accounts import AccountService


def cloud_claim_token(
    site: Annotated[str, typer.Option(help="site id")],
    gateway: Annotated[str, typer.Option(help="gateway id")],
    config: Annotated[Path, typer.Option(help="the gateway's site configuration (TOML)")],
    expires_h: Annotated[
        int, typer.Option(min=1, max=24 * 30, help="hours the token stays redeemable")
    ] = 24,
    mqtt_url: Annotated[
        str | None, typer.Option(help="broker URL as the gateway reaches it (default: MF_MQTT_URL)")
    ] = None,
    mqtt_username: Annotated[str | None, typer.Option(help="the gateway's broker user")] = None,
    mqtt_password: Annotated[
        str | None,
        typer.Option(
            envvar="MF_CLAIM_MQTT_PASSWORD",
            help="the gateway's broker password (prefer the environment variable)",
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            help="new hardware for a provisioned gateway: its old keys are revoked when redeemed"
        ),
    ] = False,
) -> None:
    """Issue a single-use claim token for one gateway; the token is printed once, here.

    Whoever runs this holds the registry, so a replacement issued here is approved in advance.
    """
    import getpass

    from cloud.gateways.provisioning import (
        BrokerGrant,
        CloudSigner,
        ProvisioningError,
        ProvisioningService,
    )
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    settings = Settings()
    try:
        site_config = config.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"{config}: cannot read: {exc.strerror}") from None
    try:
        service = ProvisioningService(
            registry(settings), CloudSigner.load_or_create(settings.data_dir / "cloud.key")
        )
        claim = service.create_claim(
            site,
            gateway,
            site_config,
            BrokerGrant(
                mqtt_url or settings.mqtt_url, mqtt_username, mqtt_password, settings.topic_prefix
            ),
            ttl=timedelta(hours=expires_h),
            replace=replace,
            issued_by=f"cli:{getpass.getuser()}",
            approved_by=f"cli:{getpass.getuser()}" if replace else None,
        )
    except ProvisioningError as exc:
        raise fail(str(exc)) from None
    typer.echo(
        f"claim token for gateway {claim.gateway!r} at site {claim.site!r}, valid until "
        f"{claim.expires_at.isoformat(timespec='seconds')}; single use, shown only now:",
        err=True,
    )
    typer.echo(claim.token)


def cloud_api(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port")] = 8000,
    gateway_feed: Annotated[
        bool,
        typer.Option(
            help="subscribe to gateways' health, state and answers and send commands (MF_MQTT_URL)"
        ),
    ] = True,
) -> None:
    """Serve the cloud API and web pages (OpenAPI at /openapi.json) until stopped."""
    import logging

    import uvicorn
    from cryptography.hazmat.primitives import serialization
    from pydantic import ValidationError

    from cloud.gateways.command_keys import CommandKeyRing
    from cloud.gateways.feed import GatewayFeed
    from cloud.gateways.provisioning import (
        BrokerGrant,
        CloudKeyError,
        CloudSigner,
        ProvisioningService,
    )
    from cloud.statements.links import SecretError, WebSecret
    from cloud.web.app import create_app
    from cloud.web.deps import ApiServices, WebServices
    from cloud.web.settings import WebSettings
    from meterflow.assembly import registry, series_store
    from meterflow.settings import Settings

    try:
        settings, web_settings = Settings(), WebSettings()
    except ValidationError as exc:
        msgs = (str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise fail("; ".join(msgs)) from None
    problem = web_settings.public_url_problem()
    if problem:
        raise fail(problem)
    settings.ensure_data_dir()
    key_path = settings.data_dir / "cloud.key"
    try:
        signer = CloudSigner.load_or_create(key_path)
        secret = WebSecret.load_or_create(
            web_settings.secret_file or settings.data_dir / "web.secret"
        )
    except (CloudKeyError, SecretError) as exc:
        raise fail(str(exc)) from None
    # CloudSigner checked the file (mode, type); statements are signed with the same key.
    signing_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    sessions = registry(settings)
    provisioning = ProvisioningService(
        sessions, signer, command_keys=CommandKeyRing(sessions, signer, settings.data_dir)
    )
    web = WebServices.build(
        provisioning,
        signing_key=signing_key,
        secret=secret,  # type: ignore[arg-type]
        claim_broker=BrokerGrant(
            web_settings.gateway_mqtt_url or settings.mqtt_url, topic_prefix=settings.topic_prefix
        ),
        public_url=web_settings.public_url,
        cookie_secure=web_settings.cookie_secure,
        link_ttl=timedelta(days=web_settings.link_days),
        session_ttl=timedelta(hours=web_settings.session_hours),
        topic_prefix=settings.topic_prefix,
        series=lambda: series_store(settings),
        hash_slots=web_settings.hash_slots,
        page_cache=web_settings.page_cache,
    )
    feed = None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if gateway_feed:
        feed = GatewayFeed(
            web.gateways,
            settings.broker_url,
            client_id=f"mf-cloud-api-{port}",
            dispatch=web.commands,
            state_trust=web_settings.gateway_state,
        )
        web.commands.publish = feed.publish  # the feed needs the services, they its link
        feed.start(wait_s=0)
    try:
        uvicorn.run(
            create_app(ApiServices(provisioning=provisioning, web=web)),
            host=host,
            port=port,
            log_level="info",
            proxy_headers=True,
        )
    finally:
        if feed is not None:
            feed.stop()


def cloud_web_account(
    username: Annotated[str, typer.Argument(help="the staff member's user name")],
    role: Annotated[
        str, typer.Option(help="admin, finance, engineer, manager, supervisor or legal")
    ],
    site: Annotated[
        list[str] | None, typer.Option(help="a site the account acts on (repeat; not for admin)")
    ] = None,
    building: Annotated[
        list[str] | None,
        typer.Option(
            help="SITE/BUILDING the account is limited to, e.g. park-a/A (repeat; a manager "
            "needs one, a supervisor or legal may have some; its site is added)"
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            envvar="MF_WEB_ACCOUNT_PASSWORD",
            help="the password (prefer the environment variable; asked for when not given)",
        ),
    ] = None,
    display_name: Annotated[
        str | None,
        typer.Option(help="the person's name as printed on statements (kept when not given)"),
    ] = None,
    staff: Annotated[
        str | None,
        typer.Option(
            "--staff",
            help="the person's staff record id (their reminders and tasks make their work "
            "queue; kept when not given, '' clears it; default: the staff record of the same "
            "id as the user name)",
        ),
    ] = None,
) -> None:
    """Create a staff account of the web pages, or reset its password, role, sites and
    buildings (which ends its sessions and API tokens)."""
    from cloud.staff.accounts import AccountService, InvalidAccount
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    secret = password or typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        created = AccountService(registry(Settings())).create_account(
            username,
            secret,
            role,
            site or [],
            by="cli",
            display_name=display_name,
            buildings=building or [],
            staff_id=staff,
        )
    except InvalidAccount as exc:
        raise fail(str(exc)) from None
    scope = f" limited to {', '.join(sorted(set(building)))}" if building else ""
    if created:
        typer.echo(f"account {username!r} ({role}){scope} created", err=True)
    else:
        typer.echo(
            f"account {username!r} ({role}){scope} saved; its password is reset and its "
            "sessions and API tokens have ended",
            err=True,
        )


def _accounts() -> AccountService:
    from cloud.staff.accounts import AccountService
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    return AccountService(registry(Settings()))


def cloud_web_account_disable(
    username: Annotated[str, typer.Argument(help="the staff member's user name")],
) -> None:
    """Disable a staff account: its sessions and API tokens end at once."""
    from cloud.staff.accounts import InvalidAccount

    try:
        ended = _accounts().disable_account(username, by="cli")
    except InvalidAccount as exc:
        raise fail(str(exc)) from None
    typer.echo(f"account {username!r} disabled; {ended} sessions and API tokens ended", err=True)


def cloud_web_account_enable(
    username: Annotated[str, typer.Argument(help="the staff member's user name")],
) -> None:
    """Enable a disabled staff account again (it signs in anew)."""
    from cloud.staff.accounts import InvalidAccount

    try:
        _accounts().enable_account(username, by="cli")
    except InvalidAccount as exc:
        raise fail(str(exc)) from None
    typer.echo(f"account {username!r} enabled", err=True)


def cloud_web_account_unlock(
    username: Annotated[
        str | None, typer.Argument(help="the account to unlock (or give --source)")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="a blocked client address to unlock instead")
    ] = None,
    show: Annotated[
        bool, typer.Option("--list", help="list the locked accounts and blocked addresses")
    ] = False,
) -> None:
    """Lift a sign-in lock (an account's, or a source address's with --source) and forget its
    failed sign-ins; --list shows what is locked."""
    from cloud.staff.accounts import InvalidAccount

    accounts = _accounts()
    if show:
        for lock in accounts.locks():
            until = lock.until.isoformat(timespec="seconds") if lock.until else "admin unlocks"
            typer.echo(
                f"{lock.kind}\t{lock.subject}\t{lock.failures} failures\t"
                f"since {lock.locked_at.isoformat(timespec='seconds')}\tuntil {until}"
            )
        return
    if (username is None) == (source is None):
        raise fail("web-account-unlock: expected an account name or --source ADDRESS (one)")
    try:
        had = accounts.unlock(account=username, source=source, by="cli")
    except InvalidAccount as exc:
        raise fail(str(exc)) from None
    what = f"account {username!r}" if username is not None else f"address {source!r}"
    typer.echo(f"{what} unlocked" + ("" if had else " (it had no failed sign-ins)"), err=True)
