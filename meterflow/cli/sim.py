"""``meterflow sim``: simulated meters speaking the real protocols, and a simulated lease
portfolio for demos and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated

import typer

from meterflow.cli.common import fail, load_settings

sim_app = typer.Typer(help="Simulated meters speaking the real protocols.", no_args_is_help=True)


@sim_app.command("portfolio")
def sim_portfolio(
    buildings: Annotated[int, typer.Option(min=1, max=1000)] = 6,
    units_per_building: Annotated[int, typer.Option(min=1, max=10_000)] = 80,
    days: Annotated[int, typer.Option(min=120, max=3650, help="days of history")] = 760,
    start: Annotated[str, typer.Option(help="first day of the history, YYYY-MM-DD")] = "2024-11-01",
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Write a simulated lease portfolio with daily use into the configured registry and
    series store (behaviour: docs/vacancy.md), to try `meterflow cloud risk ...` on."""
    from datetime import date

    from sqlalchemy import func, select

    from cloud.leases.models import Lease
    from meterflow.assembly import registry, series_store
    from meterflow.scenarios.portfolio import generate_portfolio
    from meterflow.scenarios.portfolio_plan import PortfolioSpec

    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise fail(f"--start {start!r}: expected YYYY-MM-DD") from None
    settings = load_settings()
    sessions = registry(settings)
    with sessions() as session:
        if session.scalar(select(func.count()).select_from(Lease)):
            raise fail(
                f"{settings.registry_url} already holds leases; the simulated "
                "portfolio goes into an empty registry (set MF_DATA_DIR)"
            )
    store = series_store(settings)
    try:
        summary = generate_portfolio(
            sessions,
            store,
            PortfolioSpec(
                start=first,
                days=days,
                buildings=buildings,
                units_per_building=units_per_building,
                seed=seed,
            ),
        )
    finally:
        store.close()
    typer.echo(
        json.dumps(
            {
                "units": summary.units,
                "leases": summary.leases,
                "tenants": summary.tenants,
                "points": summary.points,
                "invoices": summary.invoices,
                "tickets": summary.tickets,
                "now": summary.now.isoformat(),
            }
        )
    )


@sim_app.command("dlt645")
def sim_dlt645(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0: any free one)")] = 0,
    meters: Annotated[int, typer.Option(min=1, max=254, help="meters on the line")] = 8,
    seed: Annotated[int, typer.Option(help="load model seed")] = 1,
) -> None:
    """Serve a line of simulated DL/T645-2007 meters on TCP until stopped."""
    from simulators.load import SystemClock
    from simulators.site import demo_line, demo_meter_tree, serve_line_forever

    tree = demo_meter_tree(meters)
    for m in tree:
        typer.echo(f"{m.id} address {m.address} {m.role} parent {m.parent or '-'}")
    line = demo_line(tree, SystemClock(), seed=seed)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_line_forever(line, "127.0.0.1", port))
