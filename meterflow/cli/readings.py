"""``meterflow cloud readings import FILE.csv`` and ``meterflow cloud drivers import FILE.csv``.

Manual readings (人工抄表, a replaced meter's final read, history) go into the configured series
store with source ``manual``; driver values (e.g. a lobby's daily maximum temperature) into
the registry. Both check the whole file first and store nothing when any row is wrong: the
problems are listed on stderr, each naming its line and column, and the exit status is 2.
``--as`` names the account recorded as the importer (default: the OS user). Formats:
docs/manual-readings.md. Only typer is imported at module level.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meterflow.cli.common import fail, load_settings

if TYPE_CHECKING:
    from cloud.series.csvimport import ImportRefused

readings_app = typer.Typer(
    help="Manual readings beside the gateways' (人工抄表).", no_args_is_help=True
)
drivers_app = typer.Typer(help="Daily driver values of formula keys.", no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="CSV file (UTF-8), header line first")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="account recorded as the importer (default: the OS user name)"),
]
_ACCOUNT = re.compile(r"^[^\x00-\x1f\x7f]{1,64}\Z")


def _account(given: str | None) -> str:
    import getpass

    if given is None:
        try:
            given = getpass.getuser()
        except (KeyError, OSError):
            raise fail(
                "--as: no OS user name to record as the importer; give --as ACCOUNT"
            ) from None
    if not _ACCOUNT.match(given):
        raise fail(f"--as {given!r}: expected 1-64 printable characters")
    return given


def _refused(exc: ImportRefused, as_json: bool) -> typer.Exit:
    if as_json:
        doc = {"refused": True, "file": exc.source, "problems": exc.problems, "more": exc.more}
        typer.echo(json.dumps(doc, ensure_ascii=False))
    for problem in exc.problems:
        typer.echo(f"  {problem}", err=True)
    if exc.more:
        typer.echo(f"  ... and {exc.more} more", err=True)
    total = len(exc.problems) + exc.more
    return fail(f"{exc.source}: refused, nothing stored ({total} problem{'s' * (total != 1)})")


def _summary(source: Path, doc: dict[str, Any], per: str, what: str) -> None:
    typer.echo(
        f"{source}: {doc['rows']} rows: {doc['stored']} {what} stored, "
        f"{doc['unchanged']} already stored unchanged"
    )
    for name, counts in doc[per].items():
        typer.echo(f"  {name}: {counts['stored']} stored, {counts['unchanged']} unchanged")


@readings_app.command("import")
def readings_import(
    file: FileArg,
    as_json: JsonOpt = False,
    account: AsOpt = None,
    site: Annotated[
        str | None,
        typer.Option(
            "--site",
            help="the site whose meters these are (needed when two sites share a meter id)",
        ),
    ] = None,
) -> None:
    """Import manual readings: columns meter,quantity,read_at,value[,quality][,note];
    read_at ISO 8601 with offset (2026-03-01T08:00:00+08:00); value in kWh/kvarh/m³ after
    the multiplier; meters of --site, or each meter id's one site. Nothing is stored unless
    every row is right; a stored point with another value is a conflict, never overwritten;
    re-importing a file changes nothing."""
    from cloud.series.base import SeriesStoreError
    from cloud.series.csvimport import ImportRefused
    from cloud.series.manual import import_readings
    from meterflow.assembly import registry, series_store

    by = _account(account)
    settings = load_settings()
    sessions = registry(settings)
    store = series_store(settings)
    try:
        with sessions() as session:
            report = import_readings(store, session, file, by, site=site)
    except ImportRefused as exc:
        raise _refused(exc, as_json) from None
    except SeriesStoreError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    doc = {"file": str(file), "by": by, **report.as_dict()}
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False))
    else:
        _summary(file, doc, "per_meter", "points")


@drivers_app.command("import")
def drivers_import(file: FileArg, as_json: JsonOpt = False, account: AsOpt = None) -> None:
    """Import daily driver values: columns site,driver,date,value (date YYYY-MM-DD, a local
    date of the site). Nothing is stored unless every row is right; a stored value that
    differs is a conflict, never overwritten; re-importing a file changes nothing."""
    from cloud.apportion.drivers import import_drivers_file
    from cloud.series.csvimport import ImportRefused
    from meterflow.assembly import registry

    by = _account(account)
    sessions = registry(load_settings())
    try:
        with sessions.begin() as session:
            report = import_drivers_file(session, file, by)
    except ImportRefused as exc:
        raise _refused(exc, as_json) from None
    doc = {"file": str(file), "by": by, **report.as_dict()}
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False))
    else:
        _summary(file, doc, "per_driver", "values")
