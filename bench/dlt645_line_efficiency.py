"""Bench: how close the DL/T645 line master gets to the wire's own limit.

32 simulated DL/T645-2007 meters share one 2400-bit/s line (the simulator models wire
timing: the request's transmission, the meter's turnaround, the reply's transmission, at 11
bits per character). The master reads 4 DIs from every meter, one transaction at a time,
with its usual pause between requests. The floor is what the wire alone needs:
Σ (request bytes + reply bytes) × 11 ÷ baud + turnaround, per transaction. Reported: wall
time ÷ floor per round, median over rounds. Goal ≤ 1.15.

    python bench/dlt645_line_efficiency.py [--quick]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from datetime import UTC, datetime

from meter_drivers.dlt645.frame import encode_frame
from meter_drivers.dlt645.master import Dlt645Master
from meter_drivers.dlt645.requests import build_read
from meter_drivers.transport import TcpTransport
from simulators.dlt645_meter import Dlt645Line, SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SimClock

BITS_PER_CHARACTER = 11  # 8E1: start + 8 data + parity + stop
DIS = ("00010000", "02010100", "02020100", "02030000")  # energy, voltage, current, power


def wire_floor_s(line: Dlt645Line, addresses: list[str], preamble: int) -> float:
    """Seconds the wire itself needs for one round: every request and reply, plus turnaround."""
    total = 0.0
    for address in addresses:
        for di in DIS:
            request = encode_frame(build_read(address, di), preamble)
            reply = line.transact(request)
            total += (
                len(request) + len(reply)
            ) * BITS_PER_CHARACTER / line.baud + line.turnaround_s
    return total


async def one_round(master: Dlt645Master, addresses: list[str]) -> float:
    started = time.perf_counter()
    for address in addresses:
        for di in DIS:
            await master.read(address, di)
    return time.perf_counter() - started


async def measure(port: int, addresses: list[str], rounds: int, pause_s: float) -> list[float]:
    master = Dlt645Master(
        TcpTransport("127.0.0.1", port), timeout_s=1.0, retries=0, pause_s=pause_s
    )
    try:
        await master.read(addresses[0], DIS[0])  # connect before timing
        return [await one_round(master, addresses) for _ in range(rounds)]
    finally:
        await master.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 meters, 1 round")
    parser.add_argument("--baud", type=int, default=2400)
    parser.add_argument("--pause", type=float, default=0.02, help="master pause, s")
    args = parser.parse_args()
    meters, rounds = (8, 1) if args.quick else (32, 3)

    clock = SimClock(datetime(2026, 1, 1, tzinfo=UTC))
    addresses = [f"{n:012d}" for n in range(1, meters + 1)]
    line = Dlt645Line(
        [SimulatedMeter(a, LoadModel(2.0, seed=i), clock=clock) for i, a in enumerate(addresses)],
        baud=args.baud,
        turnaround_s=0.02,
    )
    floor = wire_floor_s(line, addresses, preamble=4)
    port, stop = serve_in_thread(line)
    try:
        walls = asyncio.run(measure(port, addresses, rounds, args.pause))
    finally:
        stop()
    ratios = [w / floor for w in walls]
    transactions = meters * len(DIS)
    print(
        f"{meters} meters × {len(DIS)} DIs = {transactions} transactions per round at "
        f"{args.baud} bit/s, pause {args.pause * 1000:.0f} ms"
    )
    print(f"wire floor {floor:.3f} s/round; wall " + ", ".join(f"{w:.3f}" for w in walls) + " s")
    print(f"wall ÷ floor: median {statistics.median(ratios):.3f} (goal ≤ 1.15)")
    print(
        json.dumps(
            {
                "bench": "dlt645_line_efficiency",
                "meters": meters,
                "dis_per_meter": len(DIS),
                "baud": args.baud,
                "pause_s": args.pause,
                "rounds": rounds,
                "floor_s": round(floor, 4),
                "wall_s_median": round(statistics.median(walls), 4),
                "ratio_median": round(statistics.median(ratios), 4),
                "ratio_max": round(max(ratios), 4),
                "goal": 1.15,
                "pass": statistics.median(ratios) <= 1.15,
            }
        )
    )


if __name__ == "__main__":
    main()
