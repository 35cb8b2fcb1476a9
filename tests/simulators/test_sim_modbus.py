"""Simulated Modbus meters read through ModbusMaster over real sockets and pseudo-terminals:
every profile in every byte order, eight meters on one line with an absent unit id, faults,
writes, probing, and the one-transaction-at-a-time discipline."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

import pytest

from meter_drivers.modbus import (
    ORDERS_32,
    DeviceProfile,
    FieldValue,
    InvalidValueError,
    ModbusError,
    ModbusExceptionReply,
    ModbusLink,
    ModbusMaster,
    ReadTimeout,
    RtuOverTcpLink,
    SerialLink,
    TcpLink,
    builtin_profiles,
    plan_reads,
)
from meter_drivers.transport import TransportError
from simulators.load import LoadModel, SimClock
from simulators.modbus_meter import (
    MbapRequestParser,
    ModbusFaults,
    ModbusLine,
    ModbusPtyServer,
    RtuRequestParser,
    SimulatedModbusMeter,
    mbap_frame,
    rtu_frame,
    serve_in_thread,
)

pytestmark = pytest.mark.timeout(60)

START = datetime(2025, 3, 10, 4, 30, tzinfo=UTC)  # 12:30 local (UTC+8)
TIMEOUT_S = 0.2
PAUSE_S = 0.01
BOUND_S = 30.0  # no scenario may take longer than this, whatever hangs
SLACK_S = 0.1  # scheduling slack on top of a computed duration (the machine is shared)
PROFILES = builtin_profiles()
T = TypeVar("T")


def run(scenario: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(scenario, BOUND_S))


class LoopLag:
    """The worst lateness (s) of a 5 ms timer in the running loop while the block runs: the
    machine's scheduling noise, measured alongside a timing assertion so that a shared,
    busy machine widens the bound instead of failing the test."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _tick(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.monotonic() - started - 0.005)

    def bound(self, expected_s: float, waits: int) -> float:
        """``expected_s`` plus slack, plus the worst lag for each of ``waits`` timed waits."""
        return expected_s + SLACK_S + waits * self.worst


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


def make_meter(
    unit_id: int, profile: DeviceProfile, clock: SimClock, **options: object
) -> SimulatedModbusMeter:
    return SimulatedModbusMeter(
        unit_id, profile, LoadModel(1.5 + unit_id, seed=unit_id), clock=clock, **options
    )  # type: ignore[arg-type]


def assert_values_match(
    values: dict[str, FieldValue], meter: SimulatedModbusMeter, profile: DeviceProfile
) -> None:
    """Exactly what the meter encoded, and close to the load model's physical value
    (checked without the codec: within one scale step, or float32 precision)."""
    assert list(values) == [f.quantity for f in profile.fields]
    for quantity, reading in values.items():
        field = profile.field(quantity)
        assert reading.unit == field.unit
        assert reading.value == meter.expected(quantity), quantity
        model = meter.value(quantity)
        slack = Decimal("1e-6") * abs(model) if field.data_type.is_float else field.scale
        assert abs(reading.value - model) <= slack, (quantity, reading.value, model)


@dataclass
class Line:
    """A simulated line being served, and how a master reaches it."""

    line: ModbusLine
    link: ModbusLink
    meters: list[SimulatedModbusMeter]


@pytest.fixture(params=["modbus-tcp", "rtu-over-tcp", "rtu-pty"])
def served(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[[list[SimulatedModbusMeter]], Line]]:
    """Serve meters on a Modbus TCP port, an RTU-over-TCP port or an RTU pseudo-terminal
    (parity N: pseudo-terminals here refuse even parity)."""
    stops: list[Callable[[], None]] = []

    def serve(meters: list[SimulatedModbusMeter]) -> Line:
        line = ModbusLine(meters)
        if request.param == "rtu-pty":
            server = ModbusPtyServer(line)
            path = server.start()
            stops.append(server.stop)
            return Line(line, SerialLink(path, parity="N"), meters)
        framing = "mbap" if request.param == "modbus-tcp" else "rtu"
        port, stop = serve_in_thread(line, framing=framing)
        stops.append(stop)
        link: ModbusLink = (
            TcpLink("127.0.0.1", port) if framing == "mbap" else RtuOverTcpLink("127.0.0.1", port)
        )
        return Line(line, link, meters)

    yield serve
    for stop in stops:
        stop()


@pytest.fixture
def rtu_over_tcp() -> Iterator[Callable[[list[SimulatedModbusMeter]], Line]]:
    stops: list[Callable[[], None]] = []

    def serve(meters: list[SimulatedModbusMeter]) -> Line:
        line = ModbusLine(meters)
        port, stop = serve_in_thread(line, framing="rtu")
        stops.append(stop)
        return Line(line, RtuOverTcpLink("127.0.0.1", port), meters)

    yield serve
    for stop in stops:
        stop()


def eight_meters(clock: SimClock) -> list[SimulatedModbusMeter]:
    """Unit ids 1..8, two of each shipped profile."""
    profiles = list(PROFILES.values())
    return [make_meter(i + 1, profiles[i % len(profiles)], clock) for i in range(8)]


# -- every profile, every byte order --------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS_32)
def test_every_profile_reads_back_the_simulators_values_in_every_byte_order(
    order: str, clock: SimClock
) -> None:
    meters = [
        make_meter(i + 1, p, clock, byte_order=order) for i, p in enumerate(PROFILES.values())
    ]
    port, stop = serve_in_thread(ModbusLine(meters))

    async def scenario() -> None:
        master = ModbusMaster(TcpLink("127.0.0.1", port), timeout_s=1.0)
        try:
            for meter in meters:
                profile = PROFILES[meter.profile.name].with_byte_order(order)
                values = await master.read_fields(meter.unit_id, profile)
                assert_values_match(values, meter, profile)
        finally:
            await master.close()

    try:
        run(scenario())
    finally:
        stop()


def test_reading_with_the_wrong_byte_order_gives_other_numbers(clock: SimClock) -> None:
    meter = make_meter(1, PROFILES["sdm630"], clock, byte_order="DCBA")
    port, stop = serve_in_thread(ModbusLine([meter]))

    async def scenario() -> dict[str, FieldValue]:
        master = ModbusMaster(TcpLink("127.0.0.1", port))
        try:
            return await master.read_fields(1, PROFILES["sdm630"], ["energy_import"])
        finally:
            await master.close()

    try:
        assert run(scenario())["energy_import"].value != meter.expected("energy_import")
    finally:
        stop()


def test_energy_rises_with_simulated_time(
    clock: SimClock, rtu_over_tcp: Callable[..., Line]
) -> None:
    served = rtu_over_tcp([make_meter(3, PROFILES["adl400"], clock)])
    meter = served.meters[0]

    async def scenario() -> tuple[Decimal, Decimal]:
        master = ModbusMaster(served.link, timeout_s=1.0)
        try:
            before = (await master.read_fields(3, meter.profile))["energy_import"].value
            clock.advance(6 * 3600)
            after = (await master.read_fields(3, meter.profile))["energy_import"].value
            return before, after
        finally:
            await master.close()

    before, after = run(scenario())
    assert after > before
    assert after == meter.expected("energy_import")


# -- eight meters on one line -------------------------------------------------------------------


def test_eight_meters_on_one_line_are_all_read(
    served: Callable[..., Line], clock: SimClock
) -> None:
    line = served(eight_meters(clock))

    async def scenario() -> None:
        master = ModbusMaster(line.link, timeout_s=1.0, pause_s=PAUSE_S)
        try:
            for meter in line.meters:
                values = await master.read_fields(meter.unit_id, meter.profile)
                assert_values_match(values, meter, meter.profile)
        finally:
            await master.close()

    run(scenario())


def test_an_absent_unit_id_costs_its_timeout_and_the_other_seven_are_read_in_order(
    served: Callable[..., Line], clock: SimClock
) -> None:
    meters = eight_meters(clock)
    absent = meters.pop(3)  # unit id 4 is not on the line: silence, as on RS-485
    line = served(meters)
    poll = [*meters[:3], absent, *meters[3:]]

    lag = LoopLag()

    async def scenario() -> list[tuple[int, str, float]]:
        master = ModbusMaster(line.link, timeout_s=TIMEOUT_S, retries=1, pause_s=PAUSE_S)
        outcomes = []
        try:
            async with lag:
                for meter in poll:
                    started = time.monotonic()
                    try:
                        values = await master.read_fields(meter.unit_id, meter.profile)
                        assert_values_match(values, meter, meter.profile)
                        outcome = "read"
                    except ReadTimeout:
                        outcome = "timeout"
                    outcomes.append((meter.unit_id, outcome, time.monotonic() - started))
        finally:
            await master.close()
        return outcomes

    outcomes = run(scenario())
    assert [(u, o) for u, o, _ in outcomes] == [
        (m.unit_id, "timeout" if m is absent else "read") for m in poll
    ]
    attempts = 2
    (absent_cost,) = [s for u, o, s in outcomes if o == "timeout"]
    # timeout × attempts plus the pause before each attempt; nothing more than the
    # machine's own scheduling noise (a pause and a timeout per attempt can each run late)
    assert attempts * TIMEOUT_S <= absent_cost
    assert absent_cost <= lag.bound(attempts * (TIMEOUT_S + PAUSE_S), waits=2 * attempts)
    assert line.line.request_count(absent.unit_id) == attempts  # only its first read tried
    for meter in meters:  # every other meter got at least its planned requests
        planned = plan_reads(
            meter.profile.fields,
            max_registers=meter.profile.max_registers,
            max_gap=meter.profile.max_gap,
        )
        assert line.line.request_count(meter.unit_id) >= len(planned)


# -- faults -------------------------------------------------------------------------------------


def test_a_reply_with_a_bad_crc_is_retried(
    clock: SimClock, rtu_over_tcp: Callable[..., Line]
) -> None:
    meter = make_meter(2, PROFILES["tuf2000"], clock, faults=ModbusFaults(script=("bad_crc",)))
    served = rtu_over_tcp([meter])

    async def scenario() -> dict[str, FieldValue]:
        master = ModbusMaster(served.link, timeout_s=TIMEOUT_S, retries=1)
        try:
            return await master.read_fields(2, meter.profile)
        finally:
            await master.close()

    assert_values_match(run(scenario()), meter, meter.profile)
    # the tuf2000 map is one read: sent again after the damaged reply (more only if the
    # machine is too busy to answer the retry in time)
    assert served.line.request_count(2) >= 2


def test_a_meter_that_never_answers_raises_read_timeout_after_every_attempt(
    clock: SimClock, rtu_over_tcp: Callable[..., Line]
) -> None:
    meter = make_meter(2, PROFILES["tuf2000"], clock, faults=ModbusFaults(no_answer=1.0))
    served = rtu_over_tcp([meter])

    async def scenario() -> None:
        master = ModbusMaster(served.link, timeout_s=0.1, retries=2)
        try:
            with pytest.raises(ReadTimeout, match=r"unit 2 .* 0\.1 s, 3 attempt"):
                await master.read_fields(2, meter.profile)
        finally:
            await master.close()

    run(scenario())
    assert served.line.request_count(2) == 3


def test_an_exception_reply_is_raised_with_its_name_and_not_retried(
    clock: SimClock, served: Callable[..., Line]
) -> None:
    meter = make_meter(5, PROFILES["sdm630"], clock, faults=ModbusFaults(exception=1.0))
    line = served([meter])

    async def scenario() -> None:
        master = ModbusMaster(line.link, timeout_s=TIMEOUT_S, retries=3)
        try:
            with pytest.raises(ModbusExceptionReply) as caught:
                await master.read_fields(5, meter.profile, ["voltage_a"])
            assert (caught.value.code, caught.value.name, caught.value.function) == (
                0x04,
                "SERVER DEVICE FAILURE",
                4,
            )
        finally:
            await master.close()

    run(scenario())
    assert line.line.request_count(5) == 1


def test_a_slow_answer_past_the_timeout_is_retried_and_not_mistaken(
    clock: SimClock, served: Callable[..., Line]
) -> None:
    faults = ModbusFaults(script=("slow",), slow_extra_s=TIMEOUT_S + 0.1)
    meter = make_meter(6, PROFILES["dtsu666"], clock, faults=faults)
    line = served([meter])

    async def scenario() -> dict[str, FieldValue]:
        master = ModbusMaster(line.link, timeout_s=TIMEOUT_S, retries=2, pause_s=0.05)
        try:
            return await master.read_fields(6, meter.profile)
        finally:
            await master.close()

    assert_values_match(run(scenario()), meter, meter.profile)


def test_escape_hatch_reads_a_device_that_rejects_reads_across_unmapped_registers(
    clock: SimClock, served: Callable[..., Line]
) -> None:
    meter = make_meter(7, PROFILES["dtsu666"], clock, strict_map=True)
    line = served([meter])

    async def scenario() -> dict[str, FieldValue]:
        master = ModbusMaster(line.link, timeout_s=TIMEOUT_S)
        try:
            with pytest.raises(ModbusExceptionReply, match="ILLEGAL DATA ADDRESS"):
                await master.read_fields(7, meter.profile)
            master.configure_device(7, merge=False)
            return await master.read_fields(7, meter.profile)
        finally:
            await master.close()

    assert_values_match(run(scenario()), meter, meter.profile)


# -- writes, probes, the line discipline ---------------------------------------------------


def test_writes_use_function_6_or_16_and_read_back(
    clock: SimClock, served: Callable[..., Line]
) -> None:
    sdm630 = make_meter(1, PROFILES["sdm630"], clock)
    dtsu666 = make_meter(2, PROFILES["dtsu666"], clock, byte_order="BADC")
    line = served([sdm630, dtsu666])
    dtsu666_profile = PROFILES["dtsu666"].with_byte_order("BADC")

    async def scenario() -> None:
        master = ModbusMaster(line.link, timeout_s=TIMEOUT_S)
        try:
            await master.write_field(1, sdm630.profile, "demand_period", Decimal(15))  # FC16
            await master.write_field(2, dtsu666_profile, "ct_ratio", 40)  # FC6
            assert (await master.read_fields(1, sdm630.profile, ["demand_period"]))[
                "demand_period"
            ].value == 15
            assert (await master.read_fields(2, dtsu666_profile, ["ct_ratio"]))[
                "ct_ratio"
            ].value == 40
            sent = line.line.request_count()
            with pytest.raises(ModbusError, match="voltage_a is not marked writable"):
                await master.write_field(1, sdm630.profile, "voltage_a", 230)
            with pytest.raises(InvalidValueError, match="does not fit int16"):
                await master.write_field(2, dtsu666_profile, "ct_ratio", 40_000)
            assert line.line.request_count() == sent  # refused before the line
        finally:
            await master.close()

    run(scenario())


def test_probe_finds_present_unit_ids_and_not_absent_ones(
    clock: SimClock, served: Callable[..., Line]
) -> None:
    line = served(
        [make_meter(1, PROFILES["tuf2000"], clock), make_meter(9, PROFILES["sdm630"], clock)]
    )

    lag = LoopLag()

    async def scenario() -> tuple[list[int], float]:
        master = ModbusMaster(line.link, timeout_s=0.15, retries=3)
        try:
            async with lag:
                started = time.monotonic()
                found = [u for u in (1, 2, 9) if await master.probe(u)]
                return found, time.monotonic() - started
        finally:
            await master.close()

    found, elapsed = run(scenario())
    assert found == [1, 9]
    # the absent id costs one timeout, not (retries + 1) of them
    assert elapsed < lag.bound(0.15 + 3 * 0.02, waits=6)
    assert line.line.request_count(2) == 1


def test_concurrent_polls_share_the_line_one_transaction_at_a_time_with_the_pause(
    clock: SimClock, rtu_over_tcp: Callable[..., Line]
) -> None:
    served = rtu_over_tcp(eight_meters(clock)[:4])
    pause = 0.05

    async def scenario() -> list[dict[str, FieldValue]]:
        master = ModbusMaster(served.link, timeout_s=1.0, pause_s=pause)
        try:
            return list(
                await asyncio.gather(
                    *(master.read_fields(m.unit_id, m.profile) for m in served.meters)
                )
            )
        finally:
            await master.close()

    for values, meter in zip(run(scenario()), served.meters, strict=True):
        assert_values_match(values, meter, meter.profile)
    arrivals = list(served.line.arrivals)
    assert len(arrivals) == served.line.request_count() > 4
    # each request comes at least the pause after the previous one (minus clock jitter)
    assert min(b - a for a, b in itertools.pairwise(arrivals)) >= pause - 0.005


def test_per_device_timeout_and_retries_override_the_line_defaults(
    clock: SimClock, rtu_over_tcp: Callable[..., Line]
) -> None:
    served = rtu_over_tcp([make_meter(1, PROFILES["tuf2000"], clock)])

    lag = LoopLag()

    async def scenario() -> tuple[float, float]:
        master = ModbusMaster(served.link, timeout_s=0.15, retries=2, pause_s=PAUSE_S)
        master.configure_device(8, timeout_s=0.05, retries=0)
        try:
            costs = []
            async with lag:
                for unit_id in (8, 9):  # both absent: 8 has its own settings, 9 the defaults
                    started = time.monotonic()
                    with pytest.raises(ReadTimeout):
                        await master.read_registers(unit_id, 3, 0, 2)
                    costs.append(time.monotonic() - started)
            return costs[0], costs[1]
        finally:
            await master.close()

    own, default = run(scenario())
    assert 0.05 <= own <= lag.bound(0.05 + PAUSE_S, waits=2)
    assert 3 * 0.15 <= default <= lag.bound(3 * (0.15 + PAUSE_S), waits=6)
    assert (served.line.request_count(8), served.line.request_count(9)) == (1, 3)


def test_a_line_that_cannot_be_opened_is_a_transport_error() -> None:
    async def scenario() -> None:
        master = ModbusMaster(TcpLink("127.0.0.1", 1), connect_timeout_s=1.0)
        with pytest.raises(TransportError, match="cannot open the line"):
            await master.read_registers(1, 3, 0, 1)

    run(scenario())


# -- the simulator's framing ---------------------------------------------------------------


def test_rtu_requests_are_found_after_noise_across_chunks_and_bad_crcs_dropped() -> None:
    read = rtu_frame(4, bytes.fromhex("0300000002"))
    write = rtu_frame(7, bytes.fromhex("10000200020443660000"))
    damaged = rtu_frame(5, bytes.fromhex("0400000002"), corrupt=True)
    parser = RtuRequestParser()
    stream = b"\x00\xff" + read + damaged + write
    found = []
    for i in range(0, len(stream), 3):
        found += parser.feed(stream[i : i + 3])
    assert found == [(4, bytes.fromhex("0300000002")), (7, bytes.fromhex("10000200020443660000"))]


def test_mbap_requests_are_split_by_their_length_field() -> None:
    parser = MbapRequestParser()
    stream = mbap_frame(1, 3, bytes.fromhex("0300000002")) + mbap_frame(
        2, 4, bytes.fromhex("0400480002")
    )
    assert parser.feed(stream[:10]) == []
    assert parser.feed(stream[10:]) == [
        (1, 3, bytes.fromhex("0300000002")),
        (2, 4, bytes.fromhex("0400480002")),
    ]


def test_simulated_meter_answers_protocol_errors_with_exception_codes(clock: SimClock) -> None:
    meter = make_meter(1, PROFILES["sdm630"], clock)
    assert meter.handle(bytes.fromhex("2b0e0100")) == bytes.fromhex("ab01")  # no such function
    assert meter.handle(bytes.fromhex("0300000000")) == bytes.fromhex("8303")  # count 0
    assert meter.handle(bytes.fromhex("0600000001")) == bytes.fromhex("8602")  # not writable
    assert ModbusLine([meter]).answer(2, bytes.fromhex("0300000001")) is None  # absent: silence
