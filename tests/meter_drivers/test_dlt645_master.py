"""The DL/T645 line master against simulated meters on real TCP sockets and a pty."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meter_drivers.dlt645.control import Version
from meter_drivers.dlt645.master import Dlt645Master, ProbeOutcome, ReadTimeout
from meter_drivers.dlt645.scan import scan_line
from meter_drivers.errors import MeterErrorReply
from meter_drivers.sideline import LineAvailability, SidelinePolicy
from meter_drivers.transport import SerialTransport, TcpTransport, TransportError
from simulators.dlt645_meter import (
    Dlt645Line,
    Dlt645PtyServer,
    Faults,
    SimulatedMeter,
    serve_in_thread,
)
from simulators.load import LoadModel, SimClock

T = datetime(2026, 5, 1, 8, tzinfo=UTC)
ADDRESSES = [f"{n:012d}" for n in (11, 12, 13, 14, 15, 16, 17, 18)]
ABSENT = "000000000099"


def eight_meters(clock: SimClock, faults: dict[str, Faults] | None = None) -> Dlt645Line:
    faults = faults or {}
    return Dlt645Line(
        [
            SimulatedMeter(
                a, LoadModel(1.0 + i, seed=i), clock=clock, faults=faults.get(a, Faults())
            )
            for i, a in enumerate(ADDRESSES)
        ]
    )


def expected_energy(line: Dlt645Line, clock: SimClock) -> dict[str, Decimal]:
    return {m.address: m.load.energy_import_kwh(clock.now()) for m in line.meters}


@pytest.fixture()
def clock() -> SimClock:
    return SimClock(T)


@pytest.fixture(params=["tcp", "pty"])
def line_transport(request, clock):
    """(line, transport factory) with eight meters, over TCP or over a pseudo-terminal."""
    line = eight_meters(clock)
    if request.param == "tcp":
        port, stop = serve_in_thread(line)
        yield line, lambda: TcpTransport("127.0.0.1", port)
        stop()
    else:
        with Dlt645PtyServer(line) as pty:
            yield line, lambda: SerialTransport(pty.slave_path, baud=9600, parity="N")


def on_line(master: Dlt645Master, work):  # type: ignore[no-untyped-def]
    """Run ``work(master)`` in one event loop, closing the master's transport after."""

    async def _run():  # type: ignore[no-untyped-def]
        try:
            return await asyncio.wait_for(work(master), 60)
        finally:
            await master.close()

    return asyncio.run(_run())


def read_all(master: Dlt645Master, addresses: list[str]) -> dict[str, object]:
    async def work(m: Dlt645Master) -> dict[str, object]:
        results: dict[str, object] = {}
        for a in addresses:
            started = time.monotonic()
            try:
                value = (await m.read_value(a, "00010000")).value
            except ReadTimeout as exc:
                value = exc
            results[a] = (value, time.monotonic() - started)
        return results

    return on_line(master, work)


def test_eight_meters_on_one_line_each_read_correctly(line_transport, clock):
    line, transport = line_transport
    master = Dlt645Master(transport(), timeout_s=0.5)
    results = read_all(master, ADDRESSES)
    assert {a: v for a, (v, _) in results.items()} == expected_energy(line, clock)


def test_absent_meter_times_out_within_its_timeout_and_the_others_keep_their_turn(
    line_transport, clock
):
    line, transport = line_transport
    timeout_s, retries = 0.25, 1
    master = Dlt645Master(transport(), timeout_s=timeout_s, retries=retries)
    order = [*ADDRESSES[:3], ABSENT, *ADDRESSES[3:7]]  # 7 present meters + the absent one
    results = read_all(master, order)

    value, elapsed = results.pop(ABSENT)
    assert isinstance(value, ReadTimeout) and "no reply" in str(value)
    attempts = retries + 1
    assert attempts * timeout_s <= elapsed < attempts * timeout_s + 0.3
    energy = expected_energy(line, clock)
    assert {a: v for a, (v, _) in results.items()} == {a: energy[a] for a in results}
    assert max(t for _, t in results.values()) < timeout_s  # none waited on the absent one


def test_garbage_and_corrupt_replies_are_retried_until_a_clean_one(clock):
    faults = Faults(seed=3, garbage_before=1.0, bad_checksum=0.5)
    line = eight_meters(clock, {ADDRESSES[0]: faults})
    port, stop = serve_in_thread(line)
    master = Dlt645Master(TcpTransport("127.0.0.1", port), timeout_s=0.2, retries=8)
    try:
        values = on_line(
            master,
            lambda m: asyncio.gather(*(m.read_value(ADDRESSES[0], "00010000") for _ in range(5))),
        )
    finally:
        stop()
    expected = line.meters[0].load.energy_import_kwh(clock.now())
    assert [v.value for v in values] == [expected] * 5


def test_error_reply_is_raised_with_named_bits_not_retried(clock):
    line = eight_meters(clock)
    port, stop = serve_in_thread(line)
    master = Dlt645Master(TcpTransport("127.0.0.1", port), timeout_s=0.5)
    try:
        with pytest.raises(MeterErrorReply) as err:
            on_line(master, lambda m: m.read(ADDRESSES[0], "0F0F0F0F"))
        assert err.value.bits == ["no_such_data"]
    finally:
        stop()


def test_1997_meter_is_read_with_the_1997_dialect(clock):
    line = Dlt645Line(
        [SimulatedMeter("000000063295", LoadModel(2.0, seed=5), Version.V1997, clock=clock)]
    )
    port, stop = serve_in_thread(line)
    master = Dlt645Master(TcpTransport("127.0.0.1", port), timeout_s=0.5)
    try:
        reading = on_line(master, lambda m: m.read_value("63295", "9010", Version.V1997))
    finally:
        stop()
    assert (reading.value, reading.unit) == (line.meters[0].load.energy_import_kwh(T), "kWh")


def test_refused_connection_is_a_transport_error():
    master = Dlt645Master(TcpTransport("127.0.0.1", 1), timeout_s=0.2)
    with pytest.raises(TransportError, match="cannot connect"):
        on_line(master, lambda m: m.read(ADDRESSES[0], "00010000"))


def test_scan_finds_every_meter_on_a_shared_line(clock):
    line = eight_meters(clock)
    port, stop = serve_in_thread(line)
    master = Dlt645Master(TcpTransport("127.0.0.1", port), timeout_s=0.05, retries=0, pause_s=0)
    progress: list[tuple[int, int, int]] = []
    try:
        found = on_line(
            master, lambda m: scan_line(m, timeout_s=0.05, progress=lambda *p: progress.append(p))
        )
    finally:
        stop()
    assert found == ADDRESSES
    assert progress[-1][2] == 8 and progress[-1][0] == len(progress)


def test_scan_of_a_single_meter_takes_one_probe(clock):
    line = Dlt645Line([SimulatedMeter("008866126775", LoadModel(1.0, seed=1), clock=clock)])
    port, stop = serve_in_thread(line)
    master = Dlt645Master(TcpTransport("127.0.0.1", port), timeout_s=0.2, retries=0)

    async def work(m: Dlt645Master):  # type: ignore[no-untyped-def]
        return await m.probe("AAAAAAAAAAAA"), await scan_line(m, timeout_s=0.2)

    try:
        probe, found = on_line(master, work)
    finally:
        stop()
    assert probe.outcome is ProbeOutcome.FOUND and found == ["008866126775"]


def test_failing_meter_is_sidelined_then_retried_after_the_pause():
    now = [0.0]
    lines = LineAvailability(SidelinePolicy(after_failed_rounds=2, for_s=60), clock=lambda: now[0])
    lines.record("M1", ok=False)
    assert lines.due("M1")
    lines.record("M1", ok=False)
    assert not lines.due("M1") and lines.sidelined() == ["M1"]
    now[0] = 61
    assert lines.due("M1")
    lines.record("M1", ok=True)
    assert lines.health("M1").consecutive_failures == 0 and lines.sidelined() == []
    assert (lines.health("M1").reads, lines.health("M1").failures) == (3, 2)
