"""``meterflow cloud dead-letters``: what ingest refused (stats) and purging old letters."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from meterflow.cli.common import fail, load_settings

if TYPE_CHECKING:
    from cloud.ingest.bounds import TimeWindow
    from cloud.ingest.letters import LetterQuota
    from meterflow.settings import Settings

dead_letters_app = typer.Typer(
    help="Dead letters: messages ingest refused, with the reason.", no_args_is_help=True
)


def ingest_limits(settings: Settings) -> tuple[TimeWindow, LetterQuota]:
    """The ingest time window and dead-letter quota the settings describe."""
    from cloud.ingest.bounds import TimeWindow
    from cloud.ingest.letters import LetterQuota

    window = TimeWindow(
        timedelta(days=settings.ingest_max_age_days),
        timedelta(hours=settings.ingest_max_ahead_hours),
    )
    quota = LetterQuota(
        max_rows=settings.dead_letters_max_rows,
        max_bytes=int(settings.dead_letters_max_mib * 2**20),
        gateway_rows=settings.dead_letters_gateway_rows,
        gateway_bytes=int(settings.dead_letters_gateway_mib * 2**20),
        max_age=timedelta(days=settings.dead_letters_max_age_days),
    )
    return window, quota


@dead_letters_app.command("stats")
def dead_letters_stats() -> None:
    """Rows and bytes of dead letters, in total and by reason (JSON)."""
    from cloud.ingest.letters import letter_stats
    from meterflow.assembly import registry

    with registry(load_settings())() as session:
        typer.echo(json.dumps(letter_stats(session), indent=2))


@dead_letters_app.command("purge")
def dead_letters_purge(
    older_than_days: Annotated[
        float | None,
        typer.Option(help="purge letters older than this many days (default: the setting)"),
    ] = None,
) -> None:
    """Delete dead letters older than the configured age (or --older-than-days)."""
    from cloud.ingest.letters import purge_letters
    from edge.wire import utc_now
    from meterflow.assembly import registry

    settings = load_settings()
    days = settings.dead_letters_max_age_days if older_than_days is None else older_than_days
    if days < 0:
        raise fail(f"--older-than-days: expected a number of days >= 0, got {days}")
    cutoff = utc_now() - timedelta(days=days)
    with registry(settings).begin() as session:
        n = purge_letters(session, cutoff)
    typer.echo(json.dumps({"purged": n, "before": cutoff.isoformat()}))
