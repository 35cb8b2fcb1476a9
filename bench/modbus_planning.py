"""Bench: how many Modbus requests one poll of each shipped device profile costs.

For every profile in ``meter_drivers.modbus``: the planner's read count, one read per field
(the escape hatch), and the true minimum found by brute force (every combination of
feasible register windows, smallest first, independent of the planner's code), under the
profile's own ``max_registers`` / ``max_gap``; then a real poll through ``ModbusMaster``
against the Modbus simulator over TCP, counting the requests the simulator received. Also
the RTU wire time of a poll at 9600 baud 8E1 (11 bits per character), planned vs per field.

    python bench/modbus_planning.py [--quick]

Prints a table, then as its last line one JSON object with the figures. Exits 1 when a
plan is not minimal or the simulator saw a different number of requests than planned.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from itertools import combinations, groupby

from meter_drivers.modbus import (
    DeviceProfile,
    Field,
    ModbusMaster,
    RegisterRead,
    TcpLink,
    builtin_profiles,
    minimum_read_count,
    plan_reads,
)
from simulators.load import LoadModel, SimClock
from simulators.modbus_meter import ModbusLine, SimulatedModbusMeter, serve_in_thread

BITS_PER_CHARACTER = 11  # 8E1: start + 8 data + parity + stop
SILENCE_CHARACTERS = 3.5  # the RTU inter-frame gap, before request and before reply
REQUEST_BYTES = 8  # unit, function, address (2), count (2), CRC (2)
REPLY_OVERHEAD_BYTES = 5  # unit, function, byte count, CRC (2)


def brute_force_minimum(profile: DeviceProfile) -> int:
    """Fewest reads covering every field, by trying every combination of feasible windows
    (a window runs from one field's first register to another's last), k = 1, 2, …"""
    total = 0
    fields = sorted(profile.fields, key=lambda f: (f.function, f.address))
    for _function, group in groupby(fields, key=lambda f: f.function):
        run = list(group)
        windows = [
            frozenset(covered)
            for i in range(len(run))
            for j in range(i, len(run))
            if (covered := _window(run, i, j, profile)) is not None
        ]
        everything = frozenset(range(len(run)))
        total += next(
            k
            for k in range(1, len(run) + 1)
            if any(frozenset().union(*combo) == everything for combo in combinations(windows, k))
        )
    return total


def _window(run: list[Field], i: int, j: int, profile: DeviceProfile) -> set[int] | None:
    """Indices of the fields a read from run[i] to run[j] carries, or None if not allowed."""
    if run[j].end - run[i].address > profile.max_registers:
        return None
    inside = range(i, j + 1)
    if any(run[k + 1].address - run[k].end > profile.max_gap for k in range(i, j)):
        return None
    return set(inside)


def wire_ms(reads: list[RegisterRead], baud: int = 9600) -> float:
    """RTU time on the wire for ``reads`` (ms): both frames and both silences, no
    turnaround."""
    characters = sum(
        REQUEST_BYTES + REPLY_OVERHEAD_BYTES + 2 * r.count + 2 * SILENCE_CHARACTERS for r in reads
    )
    return round(characters * BITS_PER_CHARACTER / baud * 1000, 1)


async def observe(
    port: int, meters: list[SimulatedModbusMeter], line: ModbusLine, polls: int, merge: bool
) -> dict[str, tuple[int | float, float]]:
    """Per profile: (requests the simulator received per poll, mean poll time in ms)."""
    master = ModbusMaster(TcpLink("127.0.0.1", port), timeout_s=2.0, pause_s=0.0)
    results = {}
    try:
        for meter in meters:
            master.configure_device(meter.unit_id, merge=merge)
            line.reset_counts()
            started = time.perf_counter()
            for _ in range(polls):
                await master.read_fields(meter.unit_id, meter.profile)
            elapsed_ms = (time.perf_counter() - started) * 1000 / polls
            per_poll, leftover = divmod(line.request_count(meter.unit_id), polls)
            observed = per_poll if not leftover else line.request_count(meter.unit_id) / polls
            results[meter.profile.name] = (observed, round(elapsed_ms, 2))
    finally:
        await master.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one poll per profile, not 20")
    args = parser.parse_args()
    polls = 1 if args.quick else 20

    profiles = builtin_profiles()
    clock = SimClock(datetime(2025, 3, 10, 4, 30, tzinfo=UTC))
    meters = [
        SimulatedModbusMeter(i + 1, p, LoadModel(2.0 + i, seed=i), clock=clock)
        for i, p in enumerate(profiles.values())
    ]
    line = ModbusLine(meters)
    port, stop = serve_in_thread(line)
    try:
        merged = asyncio.run(asyncio.wait_for(observe(port, meters, line, polls, True), 120))
        single = asyncio.run(asyncio.wait_for(observe(port, meters, line, polls, False), 120))
    finally:
        stop()

    figures: dict[str, dict[str, object]] = {}
    for name, p in profiles.items():
        planned = plan_reads(p.fields, max_registers=p.max_registers, max_gap=p.max_gap)
        per_field = plan_reads(
            p.fields, max_registers=p.max_registers, max_gap=p.max_gap, merge=False
        )
        figures[name] = {
            "fields": len(p.fields),
            "max_registers": p.max_registers,
            "max_gap": p.max_gap,
            "planned": len(planned),
            "minimum": brute_force_minimum(p),
            "minimum_dp": minimum_read_count(
                p.fields, max_registers=p.max_registers, max_gap=p.max_gap
            ),
            "per_field": len(per_field),
            "observed": merged[name][0],
            "observed_per_field": single[name][0],
            "poll_ms_tcp": merged[name][1],
            "poll_ms_tcp_per_field": single[name][1],
            "wire_ms_9600_8e1": wire_ms(planned),
            "wire_ms_9600_8e1_per_field": wire_ms(per_field),
        }

    all_minimal = all(f["planned"] == f["minimum"] == f["minimum_dp"] for f in figures.values())
    all_observed = all(
        f["observed"] == f["planned"] and f["observed_per_field"] == f["per_field"]
        for f in figures.values()
    )
    header = (
        f"{'profile':<10}{'fields':>7}{'max_reg':>8}{'gap':>5}{'planned':>8}{'minimum':>8}"
        f"{'per_field':>10}{'observed':>9}{'wire ms':>9}{'per-field ms':>13}"
    )
    print(f"Modbus read planning, {polls} poll(s) per profile against the simulator over TCP")
    print(header)
    print("-" * len(header))
    for name, f in figures.items():
        print(
            f"{name:<10}{f['fields']:>7}{f['max_registers']:>8}{f['max_gap']:>5}"
            f"{f['planned']:>8}{f['minimum']:>8}{f['per_field']:>10}{f['observed']:>9g}"
            f"{f['wire_ms_9600_8e1']:>9}{f['wire_ms_9600_8e1_per_field']:>13}"
        )
    print(f"planner minimal everywhere: {all_minimal}; simulator saw the plan: {all_observed}")
    print(
        json.dumps(
            {
                "bench": "modbus_planning",
                "quick": args.quick,
                "polls": polls,
                "profiles": figures,
                "all_minimal": all_minimal,
                "all_observed_match_plan": all_observed,
            },
            separators=(",", ":"),
        )
    )
    return 0 if all_minimal and all_observed else 1


if __name__ == "__main__":
    sys.exit(main())
