"""The CPI series on the command line (decision 0042):

``meterflow cloud cpi import FILE.csv [--dry-run] [--json] [--correct --note TEXT] --as ACCOUNT``,
``meterflow cloud cpi set MONTH VALUE --basis yoy|level [--correct --note TEXT] --as ACCOUNT``
and ``meterflow cloud cpi list [--json]`` (the series, and the CPI-linked leases waiting for
a month).

Every command acts as ``--as ACCOUNT`` (admin or finance; default: the host's operator, an
admin) and is audited with origin ``cli``. Refusals print each problem on stderr and exit
with status 2, nothing stored. Only typer is imported at module level.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meterflow.cli.common import acting_as, fail

if TYPE_CHECKING:
    from cloud.leases.cpi import CpiDesk, CpiReport
    from cloud.staff.accounts import Principal

cpi_app = typer.Typer(
    help="The CPI series CPI-linked rents rise by: import, set, list.", no_args_is_help=True
)
As = Annotated[str | None, typer.Option("--as", help="act as this staff account (default: admin)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
Correct = Annotated[
    bool, typer.Option("--correct", help="change a month stored with another figure")
]
Note = Annotated[str, typer.Option("--note", help="why (required with --correct)")]


def _desk(account: str | None) -> tuple[CpiDesk, Principal]:
    from cloud.leases.cpi import CpiDesk
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    sessions = registry(Settings())
    return CpiDesk(sessions), acting_as(sessions, account)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


def _report(report: CpiReport, as_json: bool) -> None:
    summary = report.summary()
    if as_json:
        _echo_json(summary)
        return
    for m in summary["months"]:
        was = f" (was {m['before']['basis']} {m['before']['value']})" if m["before"] else ""
        typer.echo(f"{m['month']}\t{m['basis']}\t{m['value']}\t{m['status']}{was}")
    typer.echo(
        ("dry run: " if report.dry_run else "")
        + f"new {summary['new']}, unchanged {summary['unchanged']}, "
        f"corrected {summary['corrected']}; CPI leases re-planned {summary['replanned']}"
    )


def _refused(source: str, exc: Exception) -> typer.Exit:
    for problem in getattr(exc, "problems", [str(exc)]):
        typer.echo(f"{source}: {problem}", err=True)
    return fail(f"{source}: {exc}")


@cpi_app.command("import")
def cpi_import(
    file: Annotated[Path, typer.Argument(help="CSV month,basis,value (UTF-8)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show, store nothing")] = False,
    correct: Correct = False,
    note: Note = "",
    as_json: Json = False,
    account: As = None,
) -> None:
    """Import CPI figures: month YYYY-MM, basis yoy (上年同月=100) or level (定基), value.
    A file with any bad row is refused whole, each row named."""
    from cloud.leases.cpi_file import MAX_BYTES
    from cloud.leases.errors import LeaseError

    try:
        size = file.stat().st_size
        if size > MAX_BYTES:
            raise fail(f"{file}: {size} bytes, expected at most {MAX_BYTES}")
        raw = file.read_bytes()
    except OSError as exc:
        raise fail(f"{file}: {exc.strerror or exc}") from None
    desk, who = _desk(account)
    try:
        report = desk.import_csv(who, raw, dry_run=dry_run, correct=correct, note=note)
    except LeaseError as exc:
        raise _refused(str(file), exc) from None
    _report(report, as_json)


@cpi_app.command("set")
def cpi_set(
    month: Annotated[str, typer.Argument(help="the month, YYYY-MM")],
    value: Annotated[str, typer.Argument(help="the figure, e.g. 100.4 (at most 4 decimals)")],
    basis: Annotated[
        str, typer.Option("--basis", help="yoy (上年同月=100) or level (定基)")
    ] = "yoy",
    correct: Correct = False,
    note: Note = "",
    as_json: Json = False,
    account: As = None,
) -> None:
    """Store one month's CPI figure."""
    from cloud.leases.errors import LeaseError

    desk, who = _desk(account)
    try:
        report = desk.set_month(who, month, basis, value, correct=correct, note=note)
    except LeaseError as exc:
        raise _refused(month, exc) from None
    _report(report, as_json)


@cpi_app.command("list")
def cpi_list(as_json: Json = False, account: As = None) -> None:
    """The series (newest first) and the CPI-linked leases waiting for a month: lease,
    tenant, the months needed, and since when their rent is unknown."""
    from cloud.leases.errors import LeaseError

    desk, who = _desk(account)
    try:
        series, waiting = desk.series(who), desk.waiting(who)
    except LeaseError as exc:
        raise fail(str(exc)) from None
    if as_json:
        _echo_json(
            {"series": [r.as_dict() for r in series], "waiting": [w.as_dict() for w in waiting]}
        )
        return
    for r in series:
        typer.echo(f"{r.month:%Y-%m}\t{r.basis}\t{r.value}")
    if not series:
        typer.echo("no CPI figures stored")
    for w in waiting:
        typer.echo(
            f"waiting: {w.lease_id}\t{w.tenant_name}\t{w.unit_name}\tneeds CPI of "
            f"{', '.join(f'{m:%Y-%m}' for m in w.months)}\trent unknown from {w.since}"
        )
    if not waiting:
        typer.echo("no lease waits for a CPI")
