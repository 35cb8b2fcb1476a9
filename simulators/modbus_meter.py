"""Simulated Modbus meters on a simulated line, served as Modbus TCP, RTU over TCP and RTU
on a pseudo-terminal.

A ``SimulatedModbusMeter`` answers from a device profile: each field's register words are
its quantity's value from a ``LoadModel`` at the ``Clock``'s time, converted to the field's
unit, divided by its scale and encoded by the same codec the gateway decodes with (with an
optional byte-order override per meter). A ``ModbusLine`` puts several unit ids on one bus
and counts every request it hears; an absent unit id gets silence, as on a real RS-485 line
(pymodbus's own serial server would answer exception 0x04 instead, which is why the RTU
framing here is our own: frames are found by length and CRC). Faults: no answer, bad CRC,
exception reply, slow answer.
"""

from __future__ import annotations

import random
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Literal

from pymodbus.framer.rtu import FramerRTU

from meter_drivers.modbus import HOLDING, INPUT, DeviceProfile, Field
from simulators.load import Clock, LoadModel, SystemClock
from simulators.pty_line import PtyLineServer, Responder
from simulators.threaded import LineTcpServer, run_in_thread

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04
# A pause this long (s) ends an unfinished RTU frame: the 3.5-character silence of the
# spec, generous enough for a scheduler's jitter on a pty or a TCP serial server.
FRAME_SILENCE_S = 0.05
# Flow-meter velocity: the flow through a DN100 pipe, v = Q / (3600 s/h × π × 0.05² m²).
DN100_M3H_PER_MS = Decimal("28.274")

# Unit as a profile spells it → (unit of the simulator's value source, factor to this unit).
UNIT_CONVERSIONS: dict[str, tuple[str, Decimal]] = {
    "kWh": ("kWh", Decimal(1)),
    "Wh": ("kWh", Decimal(1000)),
    "kvarh": ("kvarh", Decimal(1)),
    "varh": ("kvarh", Decimal(1000)),
    "kW": ("kW", Decimal(1)),
    "W": ("kW", Decimal(1000)),
    "V": ("V", Decimal(1)),
    "A": ("A", Decimal(1)),
    "Hz": ("Hz", Decimal(1)),
    "": ("", Decimal(1)),
    "m³": ("m³", Decimal(1)),
    "L": ("m³", Decimal(1000)),
    "m³/h": ("m³/h", Decimal(1)),
    "L/h": ("m³/h", Decimal(1000)),
    "m/s": ("m/s", Decimal(1)),
    "min": ("min", Decimal(1)),
}
# Registers that accumulate are truncated (as a meter display does), never rounded up.
CUMULATIVE_PREFIXES = ("energy_", "reactive_", "water_volume")

Fault = Literal["ok", "no_answer", "bad_crc", "exception", "slow"]


class IllegalAddress(Exception):
    """A read or write touching registers the meter does not have (exception 0x02)."""


@dataclass(frozen=True)
class ModbusFaults:
    """What goes wrong with one meter; the dice are seeded, so a run is reproducible.

    ``script`` is played first, one entry per request addressed to the meter ("ok",
    "no_answer", "bad_crc", "exception", "slow"); after it, each request throws the dice:
    probabilities (0..1) of ``no_answer`` (the request is not heard), ``bad_crc`` (the reply's
    last CRC byte is off by one; RTU framings only, Modbus TCP has no CRC), ``exception``
    (answers exception ``exception_code`` instead) and ``slow`` (the reply comes
    ``slow_extra_s`` seconds late).
    """

    seed: int = 0
    script: tuple[Fault, ...] = ()
    no_answer: float = 0.0
    bad_crc: float = 0.0
    exception: float = 0.0
    exception_code: int = SERVER_DEVICE_FAILURE
    slow: float = 0.0
    slow_extra_s: float = 0.5


@dataclass(frozen=True)
class MeterAnswer:
    """A reply PDU, its extra delay (s), and whether its frame check must be spoiled."""

    pdu: bytes
    delay_s: float = 0.0
    corrupt: bool = False


class SimulatedModbusMeter:
    """One Modbus meter answering function codes 3, 4, 6 and 16 from a profile.

    ``byte_order`` overrides every field's order (any spelling or family name, e.g.
    ``"CDAB"``), as a meter configured differently from its manual's default would be.
    Registers between fields read as 0 unless ``strict_map`` is set, in which case a read
    touching one gets exception 0x02. Only fields marked writable accept writes, and only
    whole fields; a written value is kept and read back.
    """

    def __init__(
        self,
        unit_id: int,
        profile: DeviceProfile,
        load: LoadModel,
        *,
        clock: Clock | None = None,
        byte_order: str | None = None,
        faults: ModbusFaults | None = None,
        strict_map: bool = False,
    ) -> None:
        if not 1 <= unit_id <= 247:
            raise ValueError(f"unit id {unit_id}: expected 1..247")
        self.unit_id = unit_id
        self.profile = profile.with_byte_order(byte_order) if byte_order else profile
        self.load = load
        self.clock = clock or SystemClock()
        self.faults = faults or ModbusFaults()
        self.strict_map = strict_map
        self._script = deque(self.faults.script)
        self._dice = random.Random(self.faults.seed)
        self._written: dict[str, list[int]] = {}
        self._sources = self._value_sources()
        for f in self.profile.fields:
            self._conversion(f)  # refuse a profile whose units the model cannot supply

    # -- what the meter measures --------------------------------------------------------------

    def _value_sources(self) -> dict[str, tuple[Callable[[datetime], Decimal], str]]:
        """Quantity → (value at a time, in the source's unit)."""
        load = self.load
        zero = Decimal(0)

        def fraction(t: datetime) -> Decimal:
            volume = load.energy_import_kwh(t)
            return volume - volume.to_integral_value(rounding=ROUND_DOWN)

        sources: dict[str, tuple[Callable[[datetime], Decimal], str]] = {
            "energy_import": (load.energy_import_kwh, "kWh"),
            "energy_export": (load.energy_export_kwh, "kWh"),
            "energy_combined": (load.energy_import_kwh, "kWh"),  # export is 0
            "reactive_import": (load.reactive_import_kvarh, "kvarh"),
            "power_total": (load.power_kw, "kW"),
            "power_factor_total": (lambda t: load.power_factor, ""),
            "frequency": (load.frequency_hz, "Hz"),
            # A water meter reuses the same model: its rate (kW) read as m³/h, and its
            # integral (kWh) as m³, so the volume rises with simulated time like energy.
            "flow_rate": (load.power_kw, "m³/h"),
            "flow_velocity": (lambda t: load.power_kw(t) / DN100_M3H_PER_MS, "m/s"),
            "water_volume": (load.energy_import_kwh, "m³"),
            "water_volume_fraction": (fraction, "m³"),
            "water_volume_reverse": (lambda t: zero, "m³"),
            "water_volume_reverse_fraction": (lambda t: zero, "m³"),
            "demand_period": (lambda t: Decimal(60), "min"),
            "ct_ratio": (lambda t: Decimal(1), ""),
        }
        for tariff in (1, 2, 3, 4):
            sources[f"energy_import_t{tariff}"] = (
                lambda t, k=tariff: load.tariff_import_kwh(t, k),
                "kWh",
            )
        for phase, name in enumerate("abc"):
            sources[f"voltage_{name}"] = (lambda t, p=phase: load.voltage_v(t, p), "V")
            sources[f"current_{name}"] = (lambda t, p=phase: load.current_a(t, p), "A")
        return sources

    def _conversion(self, field: Field) -> Decimal:
        try:
            base, factor = UNIT_CONVERSIONS[field.unit]
        except KeyError:
            raise ValueError(
                f"{self.profile.name} {field.quantity}: unit {field.unit!r} unknown to the "
                f"simulator; expected one of {', '.join(map(repr, UNIT_CONVERSIONS))}"
            ) from None
        source = self._sources.get(field.quantity)
        if source is not None and source[1] != base:
            raise ValueError(
                f"{self.profile.name} {field.quantity}: unit {field.unit!r} cannot express "
                f"the model's {source[1]!r}"
            )
        return factor

    def value(self, quantity: str, t: datetime | None = None) -> Decimal:
        """The quantity in its field's unit at ``t`` (default: now), before encoding;
        quantities the model does not know read 0."""
        field = self.profile.field(quantity)
        now = self.clock.now() if t is None else t
        source = self._sources.get(quantity)
        raw = source[0](now) if source else Decimal(0)
        return raw * self._conversion(field)

    def field_registers(self, field: Field, t: datetime | None = None) -> list[int]:
        """The field's register words as the meter sends them."""
        if field.quantity in self._written:
            return list(self._written[field.quantity])
        rounding = ROUND_DOWN if field.quantity.startswith(CUMULATIVE_PREFIXES) else ROUND_HALF_EVEN
        return field.encode(self.value(field.quantity, t), rounding=rounding)

    def expected(self, quantity: str, t: datetime | None = None) -> Decimal:
        """What a correct client decodes for ``quantity`` at ``t``."""
        field = self.profile.field(quantity)
        return field.decode(self.field_registers(field, t))

    def registers(
        self, function: int, address: int, count: int, t: datetime | None = None
    ) -> list[int]:
        """``count`` words from ``address`` for function 3 or 4 (raises IllegalAddress)."""
        words = [0] * count
        covered = [False] * count
        end = address + count
        for f in self.profile.fields:
            if f.function != function or f.end <= address or f.address >= end:
                continue
            for i, word in enumerate(self.field_registers(f, t)):
                if address <= f.address + i < end:
                    words[f.address + i - address] = word
                    covered[f.address + i - address] = True
        if self.strict_map and not all(covered):
            raise IllegalAddress(f"{address:#06x}+{count} touches unmapped registers")
        return words

    def write(self, address: int, words: list[int]) -> None:
        """Store ``words`` from ``address``; they must cover whole writable fields."""
        position, stored = address, {}
        while position < address + len(words):
            field = next(
                (
                    f
                    for f in self.profile.fields
                    if f.writable and f.address == position and f.end <= address + len(words)
                ),
                None,
            )
            if field is None:
                raise IllegalAddress(
                    f"register {position:#06x} is not the start of a writable field"
                )
            stored[field.quantity] = words[position - address : field.end - address]
            position = field.end
        self._written.update(stored)

    # -- protocol -----------------------------------------------------------------------------

    def handle(self, pdu: bytes) -> bytes:
        """The response PDU (normal or exception) to a request PDU."""
        function = pdu[0] if pdu else 0
        try:
            if function in (HOLDING, INPUT):
                if len(pdu) != 5:
                    return _exception(function, ILLEGAL_DATA_VALUE)
                address, count = struct.unpack(">HH", pdu[1:5])
                if not 1 <= count <= 125 or address + count > 0x10000:
                    return _exception(function, ILLEGAL_DATA_VALUE)
                words = self.registers(function, address, count)
                return bytes((function, 2 * count)) + struct.pack(f">{count}H", *words)
            if function == 6:
                if len(pdu) != 5:
                    return _exception(function, ILLEGAL_DATA_VALUE)
                address, word = struct.unpack(">HH", pdu[1:5])
                self.write(address, [word])
                return pdu  # the echo is the acknowledgement
            if function == 16:
                if len(pdu) < 6:
                    return _exception(function, ILLEGAL_DATA_VALUE)
                address, count, byte_count = struct.unpack(">HHB", pdu[1:6])
                if not 1 <= count <= 123 or byte_count != 2 * count or len(pdu) != 6 + byte_count:
                    return _exception(function, ILLEGAL_DATA_VALUE)
                self.write(address, list(struct.unpack(f">{count}H", pdu[6:])))
                return pdu[:5]
        except IllegalAddress:
            return _exception(function, ILLEGAL_DATA_ADDRESS)
        return _exception(function, ILLEGAL_FUNCTION)

    def answer(self, pdu: bytes) -> MeterAnswer | None:
        """The meter's reaction to a request addressed to it, with faults (None = silence)."""
        faults = self.faults
        # Throw every die on every request, so one fault's setting does not shift the others.
        dice = [self._dice.random() for _ in range(4)]
        fault: Fault = "ok"
        if self._script:
            fault = self._script.popleft()
        elif dice[0] < faults.no_answer:
            fault = "no_answer"
        elif dice[1] < faults.bad_crc:
            fault = "bad_crc"
        elif dice[2] < faults.exception:
            fault = "exception"
        elif dice[3] < faults.slow:
            fault = "slow"
        if fault == "no_answer":
            return None
        reply = self.handle(pdu)
        if fault == "exception":
            reply = _exception(pdu[0], faults.exception_code)
        return MeterAnswer(
            reply,
            delay_s=faults.slow_extra_s if fault == "slow" else 0.0,
            corrupt=fault == "bad_crc",
        )


def _exception(function: int, code: int) -> bytes:
    return bytes(((function | 0x80) & 0xFF, code))


# -- the line ---------------------------------------------------------------------------------


class ModbusLine:
    """Several meters (unit ids) on one bus, and a record of what the bus heard.

    ``request_count(unit_id)`` counts well-framed requests per unit id, absent ones
    included; ``arrivals`` keeps the monotonic time (s) of the latest requests, so a test
    can check the master's pause between transactions. Unit id 0 is broadcast: writes go
    to every meter and nobody answers.
    """

    def __init__(self, meters: Iterable[SimulatedModbusMeter] = ()) -> None:
        self.meters: dict[int, SimulatedModbusMeter] = {}
        self.arrivals: deque[float] = deque(maxlen=10_000)
        self._counts: Counter[int] = Counter()
        self._lock = threading.Lock()
        for meter in meters:
            self.add(meter)

    def add(self, meter: SimulatedModbusMeter) -> None:
        if meter.unit_id in self.meters:
            raise ValueError(f"unit id {meter.unit_id} is already on this line")
        self.meters[meter.unit_id] = meter

    def answer(self, unit_id: int, pdu: bytes) -> MeterAnswer | None:
        """What comes back for one request (None = silence)."""
        with self._lock:
            self._counts[unit_id] += 1
            self.arrivals.append(time.monotonic())
            if unit_id == 0:
                for meter in self.meters.values():
                    if pdu[:1] in (b"\x06", b"\x10"):
                        meter.handle(pdu)
                return None
            meter = self.meters.get(unit_id)
            return None if meter is None else meter.answer(pdu)

    def request_count(self, unit_id: int | None = None) -> int:
        """Requests heard for ``unit_id`` (all unit ids when None)."""
        with self._lock:
            return self._counts[unit_id] if unit_id is not None else sum(self._counts.values())

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self.arrivals.clear()


# -- framings ---------------------------------------------------------------------------------


def rtu_crc(data: bytes) -> bytes:
    """The two CRC-16/MODBUS bytes as sent after ``data`` (low byte first)."""
    return FramerRTU.compute_CRC(data).to_bytes(2, "big")


def rtu_frame(unit_id: int, pdu: bytes, *, corrupt: bool = False) -> bytes:
    """An RTU frame: unit id, PDU, CRC (its last byte off by one when ``corrupt``)."""
    body = bytes((unit_id,)) + pdu
    crc = rtu_crc(body)
    if corrupt:
        crc = crc[:1] + bytes(((crc[1] + 1) & 0xFF,))
    return body + crc


def _rtu_request_length(buffer: bytes | bytearray, start: int) -> int | None:
    """Length of a request frame starting at ``start``; 0 = cannot tell yet, None = a
    function code whose length this meter does not know (found by CRC instead)."""
    function = buffer[start + 1]
    if function in (1, 2, 3, 4, 5, 6, 8):
        return 8
    if function in (15, 16):
        return 0 if len(buffer) < start + 7 else 9 + buffer[start + 6]
    if function in (7, 11, 12, 17):
        return 4
    return None


class RtuRequestParser:
    """Meter-side RTU framing: request frames out of a byte stream, found by length and CRC.

    Noise, damaged frames and frames of unknown length are skipped until a frame checks;
    ``feed`` after ``FRAME_SILENCE_S`` of silence first drops an unfinished frame, as the
    3.5-character gap ends a frame on a real line.
    """

    MAX_BUFFER = 512  # bytes kept while hunting through noise

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._last = 0.0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """(unit id, request PDU) for every complete request now in the stream."""
        now = time.monotonic()
        if now - self._last > FRAME_SILENCE_S:
            self._buffer.clear()
        self._last = now
        self._buffer += data
        requests: list[tuple[int, bytes]] = []
        while (found := self._next_frame()) is not None:
            start, length = found
            frame = bytes(self._buffer[start : start + length])
            del self._buffer[: start + length]  # whatever came before it was noise
            requests.append((frame[0], frame[1:-2]))
        if len(self._buffer) > self.MAX_BUFFER:
            del self._buffer[: -self.MAX_BUFFER // 2]
        return requests

    def _next_frame(self) -> tuple[int, int] | None:
        buffer = self._buffer
        for start in range(len(buffer) - 3):
            if buffer[start] > 247:  # not a unit id (0 broadcast, 1..247)
                continue
            length = _rtu_request_length(buffer, start)
            if length is None:
                longest = min(len(buffer) - start, 256)
                length = next((n for n in range(4, longest + 1) if _crc_ok(buffer, start, n)), 0)
            if length and start + length <= len(buffer) and _crc_ok(buffer, start, length):
                return start, length
        return None


def _crc_ok(buffer: bytes | bytearray, start: int, length: int) -> bool:
    body_end = start + length - 2
    return rtu_crc(bytes(buffer[start:body_end])) == buffer[body_end : body_end + 2]


class MbapRequestParser:
    """Modbus TCP framing: (transaction id, unit id, PDU) out of a byte stream."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        self._buffer += data
        requests: list[tuple[int, int, bytes]] = []
        while len(self._buffer) >= 7:
            tid, protocol, length = struct.unpack(">HHH", self._buffer[:6])
            if protocol != 0 or not 2 <= length <= 254:
                self._buffer.clear()  # not Modbus TCP: nothing here can be trusted
                break
            if len(self._buffer) < 6 + length:
                break
            unit_id = self._buffer[6]
            requests.append((tid, unit_id, bytes(self._buffer[7 : 6 + length])))
            del self._buffer[: 6 + length]
        return requests


def mbap_frame(transaction_id: int, unit_id: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", transaction_id, 0, len(pdu) + 1, unit_id) + pdu


# -- servers ----------------------------------------------------------------------------------

Framing = Literal["mbap", "rtu"]


class ModbusTcpServer(LineTcpServer):
    """A line behind a TCP port: ``framing="mbap"`` is Modbus TCP (a gateway in front of
    the meters), ``"rtu"`` a transparent serial server carrying RTU frames."""

    def __init__(self, line: ModbusLine, *, framing: Framing = "mbap") -> None:
        if framing not in ("mbap", "rtu"):
            raise ValueError(f"framing {framing!r}: expected 'mbap' or 'rtu'")
        super().__init__()
        self.line = line
        self.framing = framing

    def responder(self) -> Responder:
        mbap, rtu = MbapRequestParser(), RtuRequestParser()

        def respond(data: bytes) -> list[tuple[bytes, float]]:
            if self.framing == "mbap":
                requests = mbap.feed(data)
            else:
                requests = [(0, unit, pdu) for unit, pdu in rtu.feed(data)]
            replies = []
            for tid, unit_id, pdu in requests:
                answer = self.line.answer(unit_id, pdu)
                if answer is None:
                    continue
                frame = (
                    mbap_frame(tid, unit_id, answer.pdu)
                    if self.framing == "mbap"
                    else rtu_frame(unit_id, answer.pdu, corrupt=answer.corrupt)
                )
                replies.append((frame, answer.delay_s))
            return replies

        return respond


def serve_in_thread(
    line: ModbusLine, *, framing: Framing = "mbap", host: str = "127.0.0.1", port: int = 0
) -> tuple[int, Callable[[], None]]:
    """Run a ``ModbusTcpServer`` on its own event loop in a daemon thread.

    Returns the bound port and a function that stops the server and joins the thread.
    """
    return run_in_thread(
        ModbusTcpServer(line, framing=framing), host, port, f"modbus-{framing}-{host}:{port}"
    )


class ModbusPtyServer(PtyLineServer):
    """A Modbus line on a pseudo-terminal, speaking RTU (see ``simulators.pty_line``)."""

    name = "modbus-pty"

    def __init__(self, line: ModbusLine) -> None:
        super().__init__()
        self.line = line

    def responder(self) -> Responder:
        parser = RtuRequestParser()

        def respond(data: bytes) -> list[tuple[bytes, float]]:
            replies = []
            for unit_id, pdu in parser.feed(data):
                answer = self.line.answer(unit_id, pdu)
                if answer is not None:
                    replies.append(
                        (rtu_frame(unit_id, answer.pdu, corrupt=answer.corrupt), answer.delay_s)
                    )
            return replies

        return respond
