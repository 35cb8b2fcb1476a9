"""Lease policies on the command line: ``meterflow cloud policy import FILE.yaml`` (policy
sets of sites, all or nothing) and ``meterflow cloud policy show --lease ID`` (a lease's
effective policy and where each value comes from). Decision 0031.

Only typer is imported at module level; the services are imported when a command runs.
Registered in ``meterflow/cli/cloud.py`` as ``cloud_app.add_typer(policy_app, name="policy")``.
Exit status 0 done, 2 refused (one line on stderr naming the item and field).
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from meterflow.cli.common import acting_as, fail

policy_app = typer.Typer(
    help="Lease policies of sites and property types, and a lease's effective policy.",
    no_args_is_help=True,
)

AsOption = Annotated[
    str | None,
    typer.Option("--as", help="the staff account acting (default: the host's operator)"),
]


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@policy_app.command("import")
def policy_import(
    file: Annotated[
        Path,
        typer.Argument(help="YAML file: policies: [{site, property_type, from, preset, fields}]"),
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check only, store nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON line")] = False,
    account: AsOption = None,
) -> None:
    """Create the policy sets of FILE (each for a site and a property type or all types,
    from a date on, from a preset and/or field values). Any error refuses the whole file."""
    from cloud.apportion.case.loading import read_text
    from cloud.apportion.errors import CaseError
    from cloud.leases.errors import LeaseError
    from cloud.leases.policy_sets import PolicyService, parse_policy_file
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    try:
        items = parse_policy_file(read_text(file, "policy file"), str(file))
    except (CaseError, LeaseError) as exc:
        raise fail(str(exc)) from None
    sessions = registry(Settings())
    who = acting_as(sessions, account)
    try:
        made = PolicyService(sessions).create_many(who, items, dry_run=dry_run)
    except LeaseError as exc:
        raise fail(f"{file}: {exc}") from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "dry_run": dry_run,
                    "created": 0 if dry_run else len(made),
                    "policies": [p.as_dict() for p in made],
                },
                ensure_ascii=False,
            )
        )
        return
    verb = "would create" if dry_run else "created"
    for p in made:
        ident = "" if dry_run else f"policy {p.id} "
        typer.echo(
            f"{verb} {ident}{p.site_id}/{p.property_type} from {p.effective_from}"
            f"{' preset ' + p.preset if p.preset else ''}: {len(p.fields)} fields"
        )


@policy_app.command("show")
def policy_show(
    lease: Annotated[str, typer.Option(help="the lease")],
    day: Annotated[
        str | None, typer.Option("--date", help="the day, YYYY-MM-DD (default: today, local)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON line")] = False,
    account: AsOption = None,
) -> None:
    """A lease's effective policy on a day: each field's value and where it comes from
    (lease, named, site/type since DATE, site since DATE, default)."""
    from cloud.leases.errors import LeaseError
    from cloud.leases.policy_sets import PolicyService
    from meterflow.assembly import registry
    from meterflow.settings import Settings

    try:
        on = date.fromisoformat(day) if day else None
    except ValueError:
        raise fail(f"--date {day!r}: expected YYYY-MM-DD") from None
    sessions = registry(Settings())
    who = acting_as(sessions, account)
    try:
        resolved = PolicyService(sessions).lease_policy(who, lease, on)
    except LeaseError as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "lease": lease,
                    "fields": [
                        {
                            "field": s.field,
                            "value": s.value,
                            "source": s.source,
                            "since": s.since.isoformat() if s.since else None,
                            "policy": s.policy,
                            "label": s.label,
                        }
                        for s in resolved.sources
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    for s in resolved.sources:
        typer.echo(f"{s.field}: {_value(s.value)}  ({s.label})")
