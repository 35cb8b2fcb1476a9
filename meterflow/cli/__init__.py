"""The ``meterflow`` command: groups ``edge``, ``cloud``, ``sim`` and the ``demo``.

One module per group (:mod:`.edge`, :mod:`.cloud`, :mod:`.sim`). Each command imports what it
needs when it runs, so a gateway with only ``meterflow[edge]`` installed never imports the
cloud's dependencies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from meterflow.cli.cloud import cloud_app
from meterflow.cli.common import fail
from meterflow.cli.edge import edge_app
from meterflow.cli.sim import sim_app

app = typer.Typer(
    help="meterflow: metering gateway and utility-billing cloud.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(edge_app, name="edge")
app.add_typer(cloud_app, name="cloud")
app.add_typer(sim_app, name="sim")


@app.command("demo")
def demo(
    days: Annotated[int, typer.Option(min=1, max=30, help="days of meter time (from 11-01)")] = 30,
    interval_h: Annotated[
        int, typer.Option(min=1, max=24, help="hours between polling rounds (divides 24)")
    ] = 6,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its files (wiped first)")] = (
        Path("var/demo")
    ),
    serve: Annotated[
        bool, typer.Option("--serve", help="serve the demo's pages on 127.0.0.1 afterwards")
    ] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="port of --serve")] = 8765,
) -> None:
    """Run the product's main job on embedded defaults: simulated DL/T645 meters of a small
    park → gateway → signed envelopes → in-process MQTT broker → cloud ingest → SQLite; then
    the monthly close (site file, utility bill, close, review by fin-a, approval and posting
    by fin-b) and the tenants' statement links.

    Needs no root and no servers. Prints progress, then one JSON line with the counts.
    ``--serve`` then serves the pages (finance review, tenant statements) until stopped,
    reusing a finished demo in ``--data-dir`` if there is one.
    """
    from meterflow.demo import SUMMARY, run_demo, serve_demo

    if serve and (data_dir / SUMMARY).exists():
        serve_demo(data_dir, port, typer.echo)
        return
    try:
        summary = run_demo(
            days=days, interval_h=interval_h, data_dir=data_dir, echo=typer.echo, port=port
        )
    except ValueError as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps(summary))
    ok = (
        not summary["rejected"]
        and summary["readings_stored"] > 0
        and summary["statements"] > 0
        and summary["lines_cents"] == summary["bill_cents"] > 0
    )
    if not ok:
        raise typer.Exit(1)
    if serve:
        serve_demo(data_dir, port, typer.echo)


def main() -> None:
    app()
