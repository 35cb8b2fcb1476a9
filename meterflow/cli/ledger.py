"""The lease ledger (台账) and lease operations on the command line:
``meterflow cloud ledger template|import|export`` and ``meterflow cloud lease
sign|handover|renew|terminate`` (docs/leases.md, "Ledger import"; decision 0032).

Only typer is imported at module level; the services when a command runs. Every command
acts as ``--as ACCOUNT`` (its role, sites and buildings; default: the host's operator, an
admin) and is audited with origin ``cli``. Exit status 0 done, 2 refused (the reasons on
stderr, one a line).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from meterflow.cli.common import acting_as, fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

ledger_app = typer.Typer(help="The lease ledger (台账): template, import, export.")
lease_app = typer.Typer(help="Lease operations: sign, handover, renew, terminate.")

AsOption = Annotated[
    str | None,
    typer.Option("--as", help="the staff account acting (default: the host's operator)"),
]
#: most lease ids one batch command takes
MAX_BATCH = 1000


def _sessions() -> sessionmaker[Session]:
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    return registry(Settings())


@ledger_app.command("template")
def ledger_template(
    out: Annotated[Path, typer.Option("--out", help="where to write the empty workbook (.xlsx)")],
) -> None:
    """Write the empty ledger workbook: sheets 租户 Tenants, 单元 Units, 租约 Leases,
    租金阶梯 Rent steps and 说明 Notes, bilingual headers, lists where a column has choices."""
    from cloud.leases.ledger import template

    if out.suffix.lower() != ".xlsx":
        raise fail(f"--out {out}: expected a .xlsx file name")
    out.write_bytes(template())
    typer.echo(f"template written to {out}")


@ledger_app.command("import")
def ledger_import(
    file: Annotated[Path, typer.Argument(help="the ledger: FILE.xlsx (the template) or FILE.csv")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check only; store nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    account: AsOption = None,
) -> None:
    """Import tenants, unit profiles and leases from the ledger. Every bad cell is reported
    by sheet, row and column, with the cross-row errors; nothing is stored unless the whole
    file is good. The same file again changes nothing ("unchanged N")."""
    from cloud.leases.errors import LeaseError
    from cloud.leases.ledger import LeaseLedger
    from cloud.leases.ledger_columns import MAX_LEDGER_BYTES

    try:
        with file.open("rb") as f:
            data = f.read(MAX_LEDGER_BYTES + 1)
    except OSError as exc:
        raise fail(f"{file}: cannot read: {exc.strerror or exc}") from None
    sessions = _sessions()
    who = acting_as(sessions, account)
    try:
        report = LeaseLedger(sessions).import_file(who, data, file.name, dry_run=dry_run)
    except LeaseError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    if report.issues:
        for issue in report.issues:
            typer.echo(str(issue), err=True)
        raise fail(f"{file}: {len(report.issues)} error(s); nothing stored")
    if not as_json:
        verb = "would be" if dry_run else "were"
        typer.echo(
            f"{len(report.created)} created, {len(report.updated)} updated, unchanged "
            f"{report.unchanged}; {report.tenants} tenant(s) and {report.units} unit "
            f"profile(s) {verb} written" + (" (dry run: nothing stored)" if dry_run else "")
        )


@ledger_app.command("export")
def ledger_export(
    site: Annotated[str, typer.Option("--site", help="the site whose leases to export")],
    out: Annotated[Path, typer.Option("--out", help="FILE.xlsx or FILE.csv")],
    account: AsOption = None,
) -> None:
    """Write the site's ledger (within --as's buildings) in the template's form; importing it
    again changes nothing."""
    from cloud.leases.errors import LeaseError
    from cloud.leases.ledger import LeaseLedger

    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("xlsx", "csv"):
        raise fail(f"--out {out}: expected a .xlsx or .csv file name")
    sessions = _sessions()
    who = acting_as(sessions, account)
    try:
        data = LeaseLedger(sessions).export(who, site, fmt)
    except LeaseError as exc:
        raise fail(f"--site {site!r}: {exc}") from None
    out.write_bytes(data)
    typer.echo(f"ledger of {site} written to {out}")


def _day(name: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise fail(f"{name} {text!r}: expected YYYY-MM-DD") from None


def _ids(leases: list[str] | None, from_csv: Path | None) -> list[str]:
    """The lease ids given as arguments and in the first column of ``from_csv``."""
    import csv

    out = list(leases or [])
    if from_csv is not None:
        try:
            text = from_csv.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"--from-csv {from_csv}: cannot read: {exc}") from None
        for n, row in enumerate(csv.reader(text.splitlines()), start=1):
            if not row or not row[0].strip():
                continue
            value = row[0].strip()
            if n == 1 and value.casefold() in ("lease", "lease id", "租约编号", "id"):
                continue
            if len(value) > 64:
                raise fail(f"--from-csv {from_csv} row {n}: expected a lease id of 1–64 characters")
            out.append(value)
    if not out:
        raise fail("expected at least one lease id (arguments or --from-csv)")
    if len(out) > MAX_BATCH:
        raise fail(f"expected at most {MAX_BATCH} lease ids, got {len(out)}")
    return out


def _report(results: list[dict[str, object]]) -> None:
    for result in results:
        typer.echo(json.dumps(result, ensure_ascii=False))
    refused = [r for r in results if r["error"]]
    for r in refused:
        typer.echo(f"{r['lease']}: {r['error']}", err=True)
    if refused:
        raise fail(f"{len(refused)} of {len(results)} lease(s) refused")


@lease_app.command("sign")
def lease_sign(
    leases: Annotated[list[str] | None, typer.Argument(help="lease ids")] = None,
    on: Annotated[str | None, typer.Option("--date", help="day signed (default today)")] = None,
    how: Annotated[str, typer.Option(help="paper or e-sign")] = "paper",
    from_csv: Annotated[Path | None, typer.Option(help="CSV of lease ids (first column)")] = None,
    account: AsOption = None,
) -> None:
    """Sign draft leases (draft → signed). One JSON line per lease."""
    from cloud.leases.operations import LeaseOperations

    day = _day("--date", on)
    ids = _ids(leases, from_csv)
    sessions = _sessions()
    who = acting_as(sessions, account)
    ops = LeaseOperations(sessions)
    _report(ops.many(ids, lambda i: ops.sign(who, i, on=day, how=how)))


@lease_app.command("handover")
def lease_handover(
    lease: Annotated[str, typer.Argument(help="lease id")],
    on: Annotated[
        str | None, typer.Option("--date", help="day handed over (default today)")
    ] = None,
    account: AsOption = None,
) -> None:
    """Hand a signed lease's unit over (signed → active): rent plan, meters, statement access."""
    from cloud.leases.operations import LeaseOperations

    day = _day("--date", on)
    sessions = _sessions()
    who = acting_as(sessions, account)
    ops = LeaseOperations(sessions)
    _report(ops.many([lease], lambda i: ops.hand_over(who, i, on=day)))


@lease_app.command("renew")
def lease_renew(
    lease: Annotated[str, typer.Argument(help="lease id (expiring or open-ended)")],
    rent: Annotated[
        str | None, typer.Option(help="new monthly rent in yuan (default: the rent in force)")
    ] = None,
    months: Annotated[int | None, typer.Option(help="new term in months (1–120)")] = None,
    start: Annotated[str | None, typer.Option(help="successor's start YYYY-MM-DD")] = None,
    account: AsOption = None,
) -> None:
    """Renew a lease: a successor lease at the new rent and term."""
    import re
    from decimal import Decimal

    from cloud.leases.errors import LeaseError
    from cloud.leases.operations import LeaseOperations

    if rent is not None and not re.fullmatch(r"[0-9]{1,10}(\.[0-9]{1,2})?", rent):
        raise fail(f"--rent {rent!r}: expected yuan with at most two decimals")
    cents = int(Decimal(rent) * 100) if rent is not None else None
    begin = _day("--start", start)
    sessions = _sessions()
    who = acting_as(sessions, account)
    try:
        done = LeaseOperations(sessions).renew(
            who, lease, monthly_cents=cents, term_months=months, start_on=begin
        )
    except LeaseError as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps({"lease": lease, "status": done.status, "successor": done.successor}))


@lease_app.command("terminate")
def lease_terminate(
    leases: Annotated[list[str] | None, typer.Argument(help="lease ids")] = None,
    on: Annotated[str | None, typer.Option("--date", help="move-out day (default today)")] = None,
    reason: Annotated[str, typer.Option(help="why the lease ends (required)")] = "",
    from_csv: Annotated[Path | None, typer.Option(help="CSV of lease ids (first column)")] = None,
    account: AsOption = None,
) -> None:
    """Terminate leases (move-out): billing stops on the day, meters unbound, access revoked."""
    from cloud.leases.operations import LeaseOperations

    if not reason.strip():
        raise fail("--reason: expected why the lease ends")
    day = _day("--date", on)
    ids = _ids(leases, from_csv)
    sessions = _sessions()
    who = acting_as(sessions, account)
    ops = LeaseOperations(sessions)
    _report(ops.many(ids, lambda i: ops.terminate(who, i, on=day, reason=reason)))
