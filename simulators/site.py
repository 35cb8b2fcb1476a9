"""Simulated sites: a meter tree (main → branches → units) on one DL/T645 line."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from simulators.dlt645_meter import Dlt645Line, Dlt645TcpServer, SimulatedMeter, serve_in_thread
from simulators.load import Clock, LoadModel

__all__ = ["SiteMeter", "demo_line", "demo_meter_tree", "serve_in_thread", "serve_line_forever"]


@dataclass(frozen=True)
class SiteMeter:
    """One meter of a simulated site: its id, DL/T645 address, place in the tree and mean
    load (kW)."""

    id: str
    address: str
    parent: str | None
    role: str
    base_kw: float


def demo_meter_tree(count: int) -> list[SiteMeter]:
    """``count`` meters: one main, then up to two branches under it, then units spread over
    the branches. Addresses are 000000000001, 000000000002, ..."""
    if count < 1:
        raise ValueError(f"a site needs at least one meter, got {count}")
    meters = [SiteMeter("M01", f"{1:012d}", None, "main", 40.0)]
    branches = min(2, count - 1) if count > 3 else 0
    for b in range(branches):
        meters.append(SiteMeter(f"M{b + 2:02d}", f"{b + 2:012d}", "M01", "branch", 15.0))
    for n in range(len(meters) + 1, count + 1):
        parent = meters[1 + (n % branches)].id if branches else "M01"
        meters.append(SiteMeter(f"M{n:02d}", f"{n:012d}", parent, "unit", 2.0 + (n % 5)))
    return meters


def demo_line(
    tree: list[SiteMeter], clock: Clock, *, seed: int = 1, baud: int | None = None
) -> Dlt645Line:
    """The tree's meters as DL/T645-2007 meters on one line, loads seeded from ``seed``."""
    return Dlt645Line(
        [
            SimulatedMeter(m.address, LoadModel(m.base_kw, seed * 1000 + i), clock=clock)
            for i, m in enumerate(tree)
        ],
        baud=baud,
    )


async def serve_line_forever(line: Dlt645Line, host: str, port: int) -> None:
    """Serve ``line`` on TCP until cancelled; prints the bound address once."""
    server = Dlt645TcpServer(line)
    bound = await server.start(host, port)
    print(f"DL/T645 line with {len(line.meters)} meters on tcp://{host}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
