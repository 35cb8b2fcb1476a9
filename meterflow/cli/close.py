"""``meterflow cloud site import|export|check`` and ``meterflow cloud close``: a site's set-up
as data and the monthly close, without code (docs/monthly-close.md).

Exit status: 0 done (``close``: a draft run that can be reviewed), 3 (``close`` only) the run
was stored but is held — its flags say why and what fixes it, 2 the input was refused (the
message names every item at fault; nothing was stored).
"""

from __future__ import annotations

import getpass
import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from meterflow.cli.common import fail, load_settings

site_app = typer.Typer(help="A site's set-up as data: import, export, check.", no_args_is_help=True)

#: ``close``'s exit status when the run was stored but is held.
EXIT_HELD = 3

AsAccount = Annotated[
    str | None, typer.Option("--as", help="who does this (staff account); default: OS user")
]
Json = Annotated[bool, typer.Option("--json", help="print one JSON document")]


def _actor(account: str | None) -> str:
    return account or getpass.getuser()


@site_app.command("import")
def site_import(
    path: Annotated[Path, typer.Argument(help="site file (YAML), see docs/monthly-close.md")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="check and report, store nothing")
    ] = False,
    as_json: Json = False,
    account: AsAccount = None,
) -> None:
    """Import a site file (or the workbook ``site export SITE -o FILE.xlsx`` wrote): create
    or update each item; the same file twice changes nothing. Any error refuses the whole
    file."""
    from cloud.apportion.errors import CaseError
    from cloud.apportion.site_import import MAX_SITE_BYTES, import_upload
    from meterflow.assembly import registry

    try:
        with path.open("rb") as f:
            data = f.read(MAX_SITE_BYTES + 1)
    except OSError as exc:
        raise fail(f"{path}: cannot read the site file: {exc.strerror or exc}") from None
    sessions = registry(load_settings())
    try:
        with sessions() as session:
            report = import_upload(session, data, str(path), by=_actor(account), dry_run=dry_run)
    except CaseError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
        return
    verb = "would be" if dry_run else "were"
    typer.echo(f"site {report.site}: {'no changes' if not report.changed else 'changes'}")
    for outcome, counts in (("created", report.created), ("updated", report.updated)):
        for kind, n in sorted(counts.items()):
            typer.echo(f"  {n} {kind} item(s) {verb} {outcome}")
    for section, ids in report.not_in_file.items():
        shown = ", ".join(ids[:10]) + (" …" if len(ids) > 10 else "")
        typer.echo(f"  stored but not in the file ({section}, kept): {shown}")


@site_app.command("export")
def site_export(
    site: Annotated[str, typer.Argument(help="site id")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here (.yaml or .xlsx)")
    ] = None,
) -> None:
    """Print (or write) the site's stored set-up as a site file; ``.xlsx`` writes the
    units-and-meters workbook."""
    from cloud.apportion.site_export import site_sections
    from cloud.apportion.site_workbook import write_workbook
    from meterflow.assembly import registry

    with registry(load_settings())() as session:
        try:
            sections = site_sections(session, site)
        except LookupError as exc:
            raise fail(str(exc)) from None
    if output is not None and output.suffix.lower() == ".xlsx":
        write_workbook(sections, output)
        typer.echo(f"wrote {output}")
        return
    from cloud.apportion.site import dump_site

    text = dump_site(sections)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")


@site_app.command("check")
def site_check(
    site: Annotated[str, typer.Argument(help="site id")],
    as_json: Json = False,
) -> None:
    """List tree meters no gateway reads (no health report lists them and no point came in
    the last 35 days) and meters gateways report that are not in the tree (ids as in the
    gateways' site.toml), and whether ingest checks the site's meter ownership (not while
    no meter of the site is registered). Exit 0 when both lists are empty, else 1."""
    from cloud.apportion.site_export import site_sections
    from cloud.gateways.health import meters_reported
    from cloud.registry.service import site_meters
    from meterflow.assembly import registry

    settings = load_settings()
    with registry(settings)() as session:
        try:
            sections = site_sections(session, site)
        except LookupError as exc:
            raise fail(str(exc)) from None
        read = meters_reported(session, site)
        registered = site_meters(session, site)
    in_tree = {m["id"] for m in sections["meters"]}
    stored = _meters_with_points(settings, site, sorted(in_tree), sections)
    unread = sorted(in_tree - read.keys() - stored)
    stray = sorted(read.keys() - in_tree)
    doc = {
        "site": site,
        "tree_meters": len(in_tree),
        "not_read": unread,
        "not_in_tree": [{"meter": m, "gateway": read[m]} for m in stray],
        "registered_meters": len(registered),
        "ownership_checked": bool(registered),
        "refused_as_not_owned": sorted(read.keys() - registered) if registered else [],
    }
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False))
    else:
        typer.echo(f"site {site}: {len(in_tree)} meters in the tree, {len(read)} read")
        if not registered:
            typer.echo(
                "  no meter of this site is registered: ingest accepts its gateways' readings"
                " of any meter id (ownership is checked once the site file is imported)"
            )
        for m in doc["refused_as_not_owned"]:
            typer.echo(f"  reported by gateway {read[m]}, not registered (meter_not_owned): {m}")
        for m in unread:
            typer.echo(f"  in the tree, read by no gateway: {m}")
        for m in stray:
            typer.echo(f"  read by gateway {read[m]}, not in the tree: {m}")
        if not unread and not stray:
            typer.echo("  every tree meter is read, and every meter read is in the tree")
    if unread or stray:
        raise typer.Exit(1)


def _meters_with_points(
    settings: Any, site: str, meters: list[str], sections: dict[str, Any]
) -> set[str]:
    """Tree meters with a point of any register in the last 35 days (a gateway reads them
    even if its health report has not arrived)."""
    import time

    from cloud.apportion.site import site_from_data
    from meterflow.assembly import series_store

    schema = site_from_data(sections).schema
    store = series_store(settings)
    since = time.time_ns() - 35 * 86_400 * 1_000_000_000
    try:
        found: set[str] = set()
        for register in schema.registers:
            latest = store.latest(meters, schema.quantity(register), time.time_ns() + 1, site=site)
            found |= {m for m, (at, _v) in latest.items() if at >= since}
        return found
    finally:
        store.close()


def close_command(
    site: Annotated[str, typer.Option("--site", help="site id")],
    start: Annotated[str, typer.Option("--from", help="first day (YYYY-MM-DD, site calendar)")],
    end: Annotated[str, typer.Option("--to", help="first day after the period (exclusive)")],
    bill: Annotated[Path, typer.Option("--bill", help="BILL.yaml: the case file's bill section")],
    accept: Annotated[
        list[str] | None,
        typer.Option(
            "--accept-estimates",
            help="accept the estimates over the limit of this node (repeatable); needs --reason",
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="why the estimates are accepted")] = "",
    as_json: Json = False,
    account: Annotated[
        str, typer.Option("--as", help="the finance (or admin) staff account closing")
    ] = ...,  # type: ignore[assignment]
) -> None:
    """Close a site's period [--from, --to) against the utility bill: build the case from
    the registry and the stored readings, compute it, store a draft run.

    Exit 0: a draft run to review; 3: stored but held (see its flags); 2: refused.
    """
    from cloud.apportion.case.loading import read_sections, read_text
    from cloud.apportion.close import CloseRefused, CloseService
    from cloud.apportion.errors import CaseError
    from cloud.staff.accounts import AccountService, InvalidAccount
    from meterflow.assembly import registry, series_store

    try:
        period = (date.fromisoformat(start), date.fromisoformat(end))
    except ValueError as exc:
        raise fail(f"--from/--to: {exc} (expected YYYY-MM-DD)") from None
    if accept and not reason.strip():
        raise fail("--accept-estimates needs --reason (it is kept with the run)")
    try:
        raw = read_sections(read_text(bill, "bill file"), str(bill), "bill file")
    except CaseError as exc:
        raise fail(str(exc)) from None
    bill_section = raw["bill"] if set(raw) == {"bill"} else raw
    settings = load_settings()
    sessions = registry(settings)
    try:
        who = AccountService(sessions).acting(account)
    except InvalidAccount as exc:
        raise fail(f"--as: {exc}") from None
    closing = CloseService(sessions, lambda: series_store(settings))
    try:
        closed = closing.close(
            who,
            site_id=site,
            start=period[0],
            end=period[1],
            bill=bill_section,
            accept=[(node, reason) for node in accept or []],
        )
    except (CloseRefused, CaseError) as exc:
        raise fail(str(exc)) from None
    doc = close_report(closed)
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        _print_close(doc)
    if doc["held"]:
        raise typer.Exit(EXIT_HELD)


def close_report(closed: Any) -> dict[str, Any]:
    """The JSON document of a close: the run, its state and the apportion report's parts."""
    from meterflow.cli.apportion import report

    run = closed.run
    doc = report(closed.result, run.input_hash)
    doc.pop("lines")
    return {
        "run": run.id,
        "site": run.site_id,
        "version": run.version,
        "supersedes": run.supersedes_id,
        "status": run.status,
        "held": run.held,
        "flags": run.flags,
        "interpolated_readings": closed.interpolated,
        "missing_readings": [{"meter": m, "day": d} for m, d in closed.missing],
        **{k: v for k, v in doc.items() if k not in ("held", "flags")},
        "lines_cents": sum(doc["totals"].values()),
    }


def _print_close(doc: dict[str, Any]) -> None:
    from cloud.apportion.money import cny

    period = doc["period"]
    typer.echo(
        f"run {doc['run']} (version {doc['version']}) site {doc['site']} "
        f"{period['start']} … {period['end']} (exclusive): "
        + ("HELD" if doc["held"] else "draft, ready for review")
    )
    if doc["supersedes"]:
        typer.echo(f"  supersedes run {doc['supersedes']} (now void)")
    typer.echo(f"  bill {cny(doc['bill_cents'])} CNY, lines {cny(doc['lines_cents'])} CNY")
    for pot in doc["pots"]:
        typer.echo(f"  pot {pot['register']}/{pot['tariff']}: {cny(pot['cents'])} CNY")
    for party, cents in doc["totals"].items():
        typer.echo(f"  total {party}: {cny(cents)} CNY")
    if doc["interpolated_readings"]:
        typer.echo(f"  {doc['interpolated_readings']} boundary reading(s) interpolated")
    for gap in doc["missing_readings"][:20]:
        typer.echo(f"  no reading for {gap['meter']} at {gap['day']} (estimated by the rules)")
    for flag in doc["flags"]:
        kind = "HOLD" if flag["holds"] else "note"
        typer.echo(f"  {kind} {flag['code']} {flag['subject']}: {flag['message']}")
    if doc["held"]:
        typer.echo(
            "  to resolve: import a manual reading (meterflow cloud readings import), correct "
            "the site file (meterflow cloud site import) or accept the estimates "
            "(--accept-estimates NODE --reason ...), then close again: a new version"
        )
