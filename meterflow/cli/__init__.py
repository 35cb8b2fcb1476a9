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
    meters: Annotated[int, typer.Option(min=1, max=64, help="simulated meters on one line")] = 8,
    rounds: Annotated[int, typer.Option(min=1, max=1000, help="polling rounds to run")] = 6,
    interval_min: Annotated[int, typer.Option(min=1, help="simulated minutes between rounds")] = 15,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its files (wiped first)")] = (
        Path("var/demo")
    ),
) -> None:
    """Run the whole path on embedded defaults: simulated DL/T645 meters → gateway → signed
    envelopes → in-process MQTT broker → cloud ingest → SQLite series store.

    Needs no root and no servers. Prints progress, then one JSON line with the counts.
    """
    from meterflow.demo import run_demo

    summary = run_demo(
        meters=meters, rounds=rounds, interval_min=interval_min, data_dir=data_dir, echo=typer.echo
    )
    typer.echo(json.dumps(summary))
    if summary["rejected"] or not summary["readings_stored"]:
        raise typer.Exit(1)


def main() -> None:
    app()
