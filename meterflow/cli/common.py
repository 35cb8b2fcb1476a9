"""What every command module shares: the settings and how a command fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from cloud.notify.channels import SmtpChannel
    from cloud.staff.accounts import Principal
    from meterflow.settings import Settings


def load_settings() -> Settings:
    """The one Settings of this run (``MF_*`` variables and the optional TOML file)."""
    from meterflow.settings import Settings

    return Settings()


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` in red on stderr; the command then exits with status 2."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def acting_as(sessions: sessionmaker[Session], account: str | None) -> Principal:
    """Who a command acts as: the staff account named by ``--as`` (its role, sites and
    buildings, as for a web session), or (None) the host's operator, an admin of every site.
    An unknown or disabled account fails the command. Audited with origin ``cli``."""
    from dataclasses import replace

    from cloud.staff.accounts import AccountService, InvalidAccount, Principal, Role

    if account is None:
        return Principal("cli", Role.ADMIN, frozenset(), origin="cli")
    try:
        return replace(AccountService(sessions).acting(account), origin="cli")
    except InvalidAccount as exc:
        raise fail(f"--as: {exc}") from None


# the SMTP settings of the commands that send e-mail (``daily``, ``report mail``)
SmtpHost = Annotated[str | None, typer.Option(help="SMTP server for e-mail")]
SmtpPort = Annotated[int, typer.Option(help="SMTP port")]
SmtpStarttls = Annotated[bool, typer.Option(help="upgrade with STARTTLS")]
SmtpUser = Annotated[str | None, typer.Option(help="SMTP login")]
SmtpPassword = Annotated[
    str | None,
    typer.Option(envvar="MF_SMTP_PASSWORD", help="SMTP password (prefer the environment variable)"),
]
MailFrom = Annotated[str, typer.Option(help="sender address")]


def smtp_channel(
    host: str | None, port: int, starttls: bool, user: str | None, password: str | None, sender: str
) -> SmtpChannel | None:
    """The e-mail channel of the SMTP options (None without ``--smtp-host``)."""
    from cloud.notify.channels import SmtpChannel

    if not host:
        return None
    return SmtpChannel(
        host, port, sender=sender, username=user, password=password, starttls=starttls
    )
