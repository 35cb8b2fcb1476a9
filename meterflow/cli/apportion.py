"""``meterflow cloud apportion CASE.yaml [--json]``: compute a case file, print its lines.

For finance "what-if" checks, for support and for tests. Nothing is stored. Registered in
``meterflow/cli/cloud.py`` with ``cloud_app.command("apportion")(apportion_command)``; like the
other commands it imports the cloud's dependencies (numpy, pydantic, PyYAML) only when it
runs, so importing this module costs nothing on a gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from meterflow.cli.common import fail

if TYPE_CHECKING:
    from cloud.apportion.engine_result import EngineResult
    from cloud.apportion.statement import LineRow


def lines_json(rows: Iterable[LineRow]) -> list[dict[str, Any]]:
    """Statement lines in the one JSON form of the commands' ``--json`` (this command's and
    ``meterflow cloud run show``'s): key, dates, ``kwh`` (3 decimals, text), ``cents``,
    ``amount_cny`` and the explanation."""
    return [r.as_dict() for r in rows]


def report(result: EngineResult, input_hash: str) -> dict[str, Any]:
    """The JSON document ``--json`` prints: pots, lines, totals per party, flags."""
    from cloud.apportion.statement import line_rows

    rows = line_rows(result)
    totals: dict[str, int] = {}
    for r in rows:
        totals[r.party] = totals.get(r.party, 0) + r.cents
    period = result.inputs.period
    return {
        "period": {"start": period.day(0).isoformat(), "end": period.day(period.days).isoformat()},
        "input_hash": input_hash,
        "held": result.held,
        "flags": [
            {"code": f.code, "subject": f.subject, "holds": f.holds, "message": f.message}
            for f in result.flags
        ],
        "pots": [
            {
                "register": p.register,
                "tariff": p.version,
                "cents": p.cents,
                "catalog_cents": p.catalog_cents,
            }
            for p in result.pots
        ],
        "lines": lines_json(rows),
        "totals": dict(sorted(totals.items())),
        "bill_cents": sum(p.cents for p in result.pots),
    }


def line_table(rows: Iterable[LineRow]) -> list[str]:
    """The lines as a text table (kWh, CNY), each followed by its explanation."""
    header = (
        f"{'unit':<10} {'party':<10} {'from':<10} {'to':<10} {'component':<17} "
        f"{'origin':<8} {'reg':<6} {'tariff':<10} {'kWh':>12} {'CNY':>12}"
    )
    out = [header, "-" * len(header)]
    for r in rows:
        out.append(
            f"{r.unit:<10} {r.party:<10} {r.start:<10} {r.end:<10} {r.component:<17} "
            f"{r.origin:<8} {r.register:<6} {r.tariff:<10} {r.kwh:>12.3f} "
            f"{r.cents / 100:>12.2f}"
        )
        out.append(f"{'':<10} {r.explanation}")
    return out


def apportion_command(
    case: Annotated[Path, typer.Argument(help="case file (YAML), see docs/apportionment.md")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
) -> None:
    """Apportion a case file and print the statement lines (nothing is stored).

    Exit status 2 with a message naming the item when the case is malformed.
    """
    from cloud.apportion.case.loading import load_case
    from cloud.apportion.engine import apportion
    from cloud.apportion.errors import ApportionError
    from cloud.apportion.money import cny
    from cloud.apportion.statement import LANDLORD_PARTY, line_rows

    try:
        loaded = load_case(case)
        result = apportion(loaded.to_engine_inputs())
    except ApportionError as exc:
        raise fail(str(exc)) from None
    doc = report(result, loaded.input_hash())
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    typer.echo(
        f"{loaded.site} {doc['period']['start']} … {doc['period']['end']} (exclusive), "
        f"bill {result.inputs.bill.invoice}: {cny(doc['bill_cents'])} CNY"
    )
    typer.echo(f"input hash {doc['input_hash']}")
    for pot in doc["pots"]:
        catalog = (
            f", catalog {cny(pot['catalog_cents'])}" if pot["catalog_cents"] is not None else ""
        )
        typer.echo(f"pot {pot['register']}/{pot['tariff']}: {cny(pot['cents'])} CNY{catalog}")
    for line in line_table(line_rows(result)):
        typer.echo(line)
    for party, cents in doc["totals"].items():
        label = "landlord" if party == LANDLORD_PARTY else f"tenant {party}"
        typer.echo(f"total {label}: {cny(cents)} CNY")
    for flag in result.flags:
        typer.echo(f"{'HOLD' if flag.holds else 'note'} {flag.code} {flag.subject}: {flag.message}")
    if result.held:
        typer.echo("run would be HELD: it cannot be approved until the holding flags are resolved")
