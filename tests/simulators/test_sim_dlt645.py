"""Simulated DL/T645 meters: the load model, fault injection, and lines served over real TCP
sockets and pseudo-terminals, read through the codec the gateway uses."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import serial

from meter_drivers.dlt645 import (
    BLOCKS,
    BROADCAST,
    CATALOGUE,
    WILDCARD,
    ChecksumError,
    Frame,
    FrameParser,
    MeterErrorReply,
    ReadAddressReply,
    ReadReply,
    Version,
    build_broadcast_time,
    build_freeze,
    build_read,
    build_read_address,
    build_write,
    decode_frame,
    decode_reply,
    encode_frame,
)
from simulators.dlt645_meter import (
    Dlt645Line,
    Dlt645PtyServer,
    Dlt645TcpServer,
    Faults,
    SimulatedMeter,
    serve_in_thread,
)
from simulators.load import LoadModel, SimClock

START = datetime(2025, 3, 10, 4, 30, tzinfo=UTC)  # 12:30 local (UTC+8)
ADDRESSES = [f"{202503100000 + i:012d}" for i in range(8)]
SILENCE_S = 0.3


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START)


@pytest.fixture
def meters(clock: SimClock) -> list[SimulatedMeter]:
    return [
        SimulatedMeter(address, LoadModel(1.5 + i, seed=i), clock=clock)
        for i, address in enumerate(ADDRESSES)
    ]


@pytest.fixture
def tcp_line(meters: list[SimulatedMeter]) -> Iterator[Callable[[Frame], Frame | None]]:
    """A client of an eight-meter line behind a real TCP server on 127.0.0.1."""
    port, stop = serve_in_thread(Dlt645Line(meters, reply_preamble=4))
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        yield lambda request: tcp_transact(sock, request)
    stop()


def tcp_transact(sock: socket.socket, request: Frame, timeout_s: float = SILENCE_S) -> Frame | None:
    """Send one request; the reply frame, or None when the line stays silent."""
    sock.sendall(encode_frame(request))
    return receive_frame(sock, timeout_s)


def receive_frame(sock: socket.socket, timeout_s: float) -> Frame | None:
    parser = FrameParser()
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(512)
        except TimeoutError:
            return None
        if not chunk:
            return None  # the server hung up
        parser.feed(chunk)
        if (frame := parser.next_frame()) is not None:
            return frame
    return None


def expected_energy(meter: SimulatedMeter, clock: SimClock) -> Decimal:
    return meter.load.energy_import_kwh(clock.now())


# -- load model ---------------------------------------------------------------------------


def test_energy_register_never_decreases_and_tariffs_add_up() -> None:
    load = LoadModel(3.0, seed=7)
    t = START
    previous = load.energy_import_kwh(t)
    for _ in range(200):
        t += timedelta(minutes=37)
        now = load.energy_import_kwh(t)
        assert now >= previous
        previous = now
    tariffs = sum(load.tariff_import_kwh(t, k) for k in (1, 2, 3, 4))
    assert abs(previous - tariffs) <= Decimal("0.04")  # each register truncates to 0.01


def test_load_model_is_deterministic_per_seed() -> None:
    t = START + timedelta(days=40, hours=5)

    first, again, other = (LoadModel(2.0, seed=s).energy_import_kwh(t) for s in (1, 1, 2))

    assert first == again
    assert first != other


def test_energy_is_the_integral_of_the_hourly_power_level() -> None:
    load = LoadModel(2.0, seed=3)
    hour = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 local, on the hour

    consumed = load.energy_import_kwh(hour + timedelta(hours=1)) - load.energy_import_kwh(hour)

    assert abs(consumed - load.power_kw(hour)) <= Decimal("0.01")
    assert load.energy_import_kwh(datetime(2024, 1, 1, tzinfo=UTC)) == load.energy_import_kwh(
        load.epoch
    )


def test_sim_clock_advances_and_jumps() -> None:
    clock = SimClock(START)

    assert clock.advance(90) == START + timedelta(seconds=90)
    clock.set(datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2026, 1, 1))


# -- meters on a line, without a transport ------------------------------------------------


def read_value(
    line: Dlt645Line, address: str, di: str, version: Version = Version.V2007
) -> ReadReply:
    raw = line.transact(encode_frame(build_read(address, di, version)))
    reply = decode_reply(decode_frame(raw), version)
    assert isinstance(reply, ReadReply)
    return reply


@pytest.mark.parametrize("version", list(Version))
def test_meter_answers_every_catalogue_di(version: Version, clock: SimClock) -> None:
    meter = SimulatedMeter("8", LoadModel(4.0, seed=8), version, clock=clock)
    line = Dlt645Line([meter])
    meter.freeze()

    for di in [*CATALOGUE[version], *BLOCKS[version]]:
        reply = read_value(line, "8", di, version)
        assert reply.readings, di


def test_unknown_di_gets_no_such_data(meters: list[SimulatedMeter]) -> None:
    line = Dlt645Line(meters)

    with pytest.raises(MeterErrorReply) as caught:
        read_value(line, ADDRESSES[0], "12345678")

    assert caught.value.bits == ["no_such_data"]


def test_replies_carry_the_configured_preamble(meters: list[SimulatedMeter]) -> None:
    for count in (0, 2, 4):
        raw = Dlt645Line(meters, reply_preamble=count).transact(
            encode_frame(build_read(ADDRESSES[0], "00010000"))
        )
        assert raw[: count + 1] == b"\xfe" * count + b"\x68"


def test_block_read_matches_the_load_model(meters: list[SimulatedMeter], clock: SimClock) -> None:
    reply = read_value(Dlt645Line(meters), ADDRESSES[2], "0001FF00")
    load = meters[2].load

    assert [r.value for r in reply.readings] == [
        load.energy_import_kwh(clock.now()),
        *(load.tariff_import_kwh(clock.now(), k) for k in (1, 2, 3, 4)),
    ]


def test_broadcast_time_sets_every_meter_clock_without_reply(meters: list[SimulatedMeter]) -> None:
    line = Dlt645Line(meters)
    wall = datetime(2025, 3, 10, 12, 0, 0)

    assert line.transact(encode_frame(build_broadcast_time(wall))) == b""

    assert all(m.local_time() == wall for m in meters)
    assert read_value(line, ADDRESSES[5], "04000102").value == wall.time()


def test_broadcast_freeze_snapshots_registers_silently(
    meters: list[SimulatedMeter], clock: SimClock
) -> None:
    line = Dlt645Line(meters)
    before = expected_energy(meters[1], clock)
    with pytest.raises(MeterErrorReply):  # nothing frozen yet
        read_value(line, ADDRESSES[1], "05060101")

    assert line.transact(encode_frame(build_freeze(BROADCAST))) == b""
    clock.advance(6 * 3600)

    frozen = read_value(line, ADDRESSES[1], "05060101")
    assert frozen.readings[0].value == before
    assert expected_energy(meters[1], clock) > before


def test_write_with_wrong_password_is_unauthorized(meters: list[SimulatedMeter]) -> None:
    line = Dlt645Line(meters)
    request = build_write(ADDRESSES[0], "04000102", bytes(4), bytes(4), datetime(2025, 1, 1).time())

    with pytest.raises(MeterErrorReply) as caught:
        decode_reply(decode_frame(line.transact(encode_frame(request))))

    assert caught.value.bits == ["unauthorized"]


def test_register_rolls_over_at_capacity(clock: SimClock) -> None:
    load = LoadModel(5.0, seed=1)
    to_capacity = Decimal("999999.99") - load.energy_import_kwh(clock.now())
    meter = SimulatedMeter(
        "1", load, clock=clock, faults=Faults(register_offset_kwh=to_capacity - Decimal("1.00"))
    )
    line = Dlt645Line([meter])

    assert read_value(line, "1", "00010000").value == Decimal("999998.99")
    clock.advance(3 * 3600)

    after = read_value(line, "1", "00010000").value
    assert after < Decimal("100")  # wrapped through zero
    consumed = load.energy_import_kwh(clock.now()) - load.energy_import_kwh(START)
    assert after == consumed - Decimal("1.01")


def test_replaced_meter_restarts_near_zero(clock: SimClock) -> None:
    load = LoadModel(2.0, seed=4)
    swap = START + timedelta(hours=1)
    faults = Faults(replaced_at=swap, replacement_start_kwh=Decimal("0.50"))
    meter = SimulatedMeter("2", load, clock=clock, faults=faults)
    line = Dlt645Line([meter])

    assert read_value(line, "2", "00010000").value == load.energy_import_kwh(START)
    clock.advance(5 * 3600)

    expected = load.energy_import_kwh(clock.now()) - load.energy_import_kwh(swap) + Decimal("0.50")
    assert read_value(line, "2", "00010000").value == expected


def test_error_reply_fault_answers_with_bit_other(clock: SimClock) -> None:
    meter = SimulatedMeter("3", LoadModel(1, seed=0), clock=clock, faults=Faults(error_reply=1.0))

    with pytest.raises(MeterErrorReply) as caught:
        read_value(Dlt645Line([meter]), "3", "00010000")

    assert caught.value.bits == ["other"]


def test_no_answer_fault_is_silence(clock: SimClock) -> None:
    meter = SimulatedMeter("3", LoadModel(1, seed=0), clock=clock, faults=Faults(no_answer=1.0))

    assert Dlt645Line([meter]).transact(encode_frame(build_read("3", "00010000"))) == b""


def test_garbage_before_reply_is_skipped_by_the_parser(clock: SimClock) -> None:
    faults = Faults(seed=5, garbage_before=1.0, garbage_length=7)
    meter = SimulatedMeter("4", LoadModel(1, seed=0), clock=clock, faults=faults)
    parser = FrameParser()

    parser.feed(Dlt645Line([meter]).transact(encode_frame(build_read("4", "00010000"))))

    frame = parser.next_frame()
    assert frame is not None
    reply = decode_reply(frame)
    assert isinstance(reply, ReadReply) and reply.address == "000000000004"
    assert parser.garbage_bytes > 0


def test_fault_dice_are_reproducible_with_a_seed(clock: SimClock) -> None:
    def pattern(seed: int) -> list[bool]:
        meter = SimulatedMeter(
            "5", LoadModel(1, seed=0), clock=clock, faults=Faults(seed=seed, no_answer=0.5)
        )
        line = Dlt645Line([meter])
        return [bool(line.transact(encode_frame(build_read("5", "00010000")))) for _ in range(40)]

    assert pattern(11) == pattern(11)
    assert 5 < sum(pattern(11)) < 35


def test_slow_fault_and_wire_timing_delay_the_reply(clock: SimClock) -> None:
    meter = SimulatedMeter(
        "6", LoadModel(1, seed=0), clock=clock, faults=Faults(slow=1.0, slow_extra_s=0.25)
    )
    line = Dlt645Line([meter], baud=2400, turnaround_s=0.02)

    request = encode_frame(build_read("6", "00010000"))
    (reply,) = line.open_port().receive(request)

    wire_s = (len(request) + len(reply.data)) * 11 / 2400
    assert reply.delay_s == pytest.approx(0.25 + 0.02 + wire_s)


def test_1997_meter_answers_reads_sent_to_broadcast_address(clock: SimClock) -> None:
    meter_1997 = SimulatedMeter("63295", LoadModel(1, seed=2), Version.V1997, clock=clock)
    meter_2007 = SimulatedMeter("63296", LoadModel(1, seed=2), clock=clock)

    reply = read_value(Dlt645Line([meter_1997]), BROADCAST, "9010", Version.V1997)
    silent = Dlt645Line([meter_2007]).transact(encode_frame(build_read(BROADCAST, "00010000")))

    assert reply.address == "000000063295"
    assert reply.value == meter_1997.load.energy_import_kwh(clock.now())
    assert silent == b""


def test_wildcard_read_with_two_meters_collides(meters: list[SimulatedMeter]) -> None:
    parser = FrameParser()

    parser.feed(Dlt645Line(meters[:2]).transact(encode_frame(build_read_address())))

    assert parser.next_frame() is None
    assert parser.checksum_errors + parser.garbage_bytes > 0


# -- over real TCP sockets ---------------------------------------------------------------


def test_eight_meters_on_one_tcp_line_each_answer_with_their_own_values(
    tcp_line: Callable[[Frame], Frame | None], meters: list[SimulatedMeter], clock: SimClock
) -> None:
    energies = []
    for meter in meters:
        frame = tcp_line(build_read(meter.address, "00010000"))
        assert frame is not None, f"meter {meter.address} did not answer"
        reply = decode_reply(frame)
        assert isinstance(reply, ReadReply)
        assert reply.address == meter.address
        assert (reply.value, reply.unit) == (expected_energy(meter, clock), "kWh")
        energies.append(reply.value)

        frame = tcp_line(build_read(meter.address, "0201FF00"))
        assert frame is not None
        voltages = decode_reply(frame)
        assert isinstance(voltages, ReadReply)
        assert [r.value for r in voltages.readings] == [
            meter.load.voltage_v(clock.now(), phase) for phase in range(3)
        ]
    assert len(set(energies)) == 8


def test_absent_address_gets_silence_over_tcp(
    tcp_line: Callable[[Frame], Frame | None], meters: list[SimulatedMeter]
) -> None:
    started = time.monotonic()

    assert tcp_line(build_read("999999999998", "00010000")) is None

    assert time.monotonic() - started >= SILENCE_S * 0.9
    assert tcp_line(build_read(meters[0].address, "00010000")) is not None  # line still works


def test_wildcard_read_address_returns_the_real_address_over_tcp(
    meters: list[SimulatedMeter],
) -> None:
    port, stop = serve_in_thread(Dlt645Line(meters[3:4]))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            frame = tcp_transact(sock, build_read_address())
            read_by_wildcard = tcp_transact(sock, build_read(WILDCARD, "00010000"))
    finally:
        stop()

    assert frame is not None and decode_reply(frame) == ReadAddressReply(ADDRESSES[3])
    assert frame.address == ADDRESSES[3]
    assert read_by_wildcard is not None and read_by_wildcard.address == ADDRESSES[3]


def test_bad_checksum_fault_produces_a_frame_the_codec_rejects(clock: SimClock) -> None:
    meter = SimulatedMeter("7", LoadModel(1, seed=0), clock=clock, faults=Faults(bad_checksum=1.0))
    port, stop = serve_in_thread(Dlt645Line([meter], reply_preamble=2))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(encode_frame(build_read("7", "00010000")))
            raw = b""
            deadline = time.monotonic() + 2
            while len(raw) < 2 + 12 + 8 and time.monotonic() < deadline:
                raw += sock.recv(512)
    finally:
        stop()

    with pytest.raises(ChecksumError):
        decode_frame(raw)
    parser = FrameParser()
    parser.feed(raw)
    assert parser.next_frame() is None and parser.checksum_errors == 1


def test_tcp_server_serves_asyncio_clients_and_stops(meters: list[SimulatedMeter]) -> None:
    async def scenario() -> Frame | None:
        server = Dlt645TcpServer(Dlt645Line(meters))
        port = await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(encode_frame(build_read(ADDRESSES[4], "02800002")))
            parser = FrameParser()
            while (frame := parser.next_frame()) is None:
                parser.feed(await asyncio.wait_for(reader.read(512), timeout=2))
            return frame
        finally:
            await server.stop()
            writer.close()

    frame = asyncio.run(scenario())

    assert frame is not None
    reply = decode_reply(frame)
    assert isinstance(reply, ReadReply) and (reply.address, reply.unit) == (ADDRESSES[4], "Hz")


def test_request_split_across_tcp_segments_is_reassembled(
    meters: list[SimulatedMeter], clock: SimClock
) -> None:
    port, stop = serve_in_thread(Dlt645Line(meters))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            raw = encode_frame(build_read(ADDRESSES[6], "00010000"))
            sock.sendall(b"\x00\x11" + raw[:7])  # noise, then half a request
            time.sleep(0.05)
            sock.sendall(raw[7:])
            frame = receive_frame(sock, 2.0)
    finally:
        stop()

    assert frame is not None
    reply = decode_reply(frame)
    assert isinstance(reply, ReadReply) and reply.value == expected_energy(meters[6], clock)


# -- over a pseudo-terminal ------------------------------------------------------------------


@pytest.fixture
def pty_port(meters: list[SimulatedMeter]) -> Iterator[serial.Serial]:
    with Dlt645PtyServer(Dlt645Line(meters)) as server:
        port = serial.Serial(
            server.slave_path, baudrate=2400, parity=serial.PARITY_NONE, timeout=SILENCE_S
        )
        try:
            yield port
        finally:
            port.close()


def pty_transact(port: serial.Serial, request: Frame) -> Frame | None:
    port.reset_input_buffer()
    port.write(encode_frame(request))
    parser = FrameParser()
    deadline = time.monotonic() + SILENCE_S
    while time.monotonic() < deadline:
        parser.feed(port.read(max(1, port.in_waiting)))
        if (frame := parser.next_frame()) is not None:
            return frame
    return None


def test_eight_meters_on_a_pty_line_each_answer_with_their_own_values(
    pty_port: serial.Serial, meters: list[SimulatedMeter], clock: SimClock
) -> None:
    for meter in meters:
        frame = pty_transact(pty_port, build_read(meter.address, "00010000"))
        assert frame is not None, f"meter {meter.address} did not answer on the pty"
        reply = decode_reply(frame)
        assert isinstance(reply, ReadReply)
        assert (reply.address, reply.value) == (meter.address, expected_energy(meter, clock))


def test_absent_address_gets_silence_on_a_pty(pty_port: serial.Serial) -> None:
    assert pty_transact(pty_port, build_read("999999999998", "00010000")) is None
    assert pty_transact(pty_port, build_read(ADDRESSES[1], "00010000")) is not None
