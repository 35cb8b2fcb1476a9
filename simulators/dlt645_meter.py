"""Simulated DL/T645 meters on a simulated line, served over TCP and pseudo-terminals.

The meters speak through the same sans-I/O codec as the gateway, from the other side:
``SimulatedMeter`` turns a request frame into reply bytes (with injected faults),
``Dlt645Line`` puts several meters on one bus (only the addressed meter answers; an absent
address gets silence, as on a real RS-485 line), and the servers move the bytes.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from meter_drivers.dlt645 import (
    BROADCAST,
    BroadcastTimeRequest,
    ChangeBaudRequest,
    DataItem,
    Frame,
    FrameError,
    FrameParser,
    FreezeRequest,
    InvalidValueError,
    NumberFormat,
    ReadAddressRequest,
    ReadFollowUpRequest,
    ReadRequest,
    Request,
    Value,
    Version,
    WriteRequest,
    address_matches,
    build_ack,
    build_change_baud_reply,
    build_error_reply,
    build_read_address_reply,
    build_read_reply,
    build_write_ack,
    decode_request,
    decode_values,
    encode_frame,
    items_for,
    parse_address,
)
from simulators.load import CENT_KWH, Clock, LoadModel, SystemClock
from simulators.pty_line import PtyLineServer, Responder
from simulators.threaded import LineTcpServer, run_in_thread

DEFAULT_PASSWORD = bytes((0x02, 0x00, 0x00, 0x00))  # privilege level 02, password 000000
BITS_PER_CHARACTER = 11  # 8E1: start + 8 data + parity + stop
REGISTER_CAPACITY_KWH = Decimal("999999.99")  # XXXXXX.XX


@dataclass(frozen=True)
class Faults:
    """What goes wrong with one meter; the dice are seeded, so a run is reproducible.

    Probabilities are per request addressed to the meter (0..1):
    ``no_answer`` (the request is not heard), ``error_reply`` (answers with error bit
    "other"), ``bad_checksum`` (the reply's checksum is off by one), ``garbage_before``
    (``garbage_length`` random bytes precede the reply), ``slow`` (the reply comes
    ``slow_extra_s`` seconds late).

    Register faults act on every energy register: ``register_offset_kwh`` is added before the
    register wraps at ``capacity_kwh`` (push a meter near 999999.99 to provoke a
    rollover); from ``replaced_at`` on, the meter is a new one whose registers restart at
    ``replacement_start_kwh``.
    """

    seed: int = 0
    no_answer: float = 0.0
    error_reply: float = 0.0
    bad_checksum: float = 0.0
    garbage_before: float = 0.0
    garbage_length: int = 3
    slow: float = 0.0
    slow_extra_s: float = 0.5
    register_offset_kwh: Decimal = Decimal(0)
    capacity_kwh: Decimal = REGISTER_CAPACITY_KWH
    replaced_at: datetime | None = None
    replacement_start_kwh: Decimal = Decimal(0)


@dataclass(frozen=True)
class MeterAnswer:
    """Reply bytes as the meter drives them onto the line, and its extra delay (s)."""

    data: bytes
    delay_s: float = 0.0


class SimulatedMeter:
    """One DL/T645 meter: answers reads of every catalogue DI from a ``LoadModel``.

    The meter's own clock is the ``clock`` plus an offset set by broadcast time and by
    writes of date/time; its readings of energy follow physical time (the ``clock``).
    Unknown DIs get an error reply with "no_such_data"; requests for other addresses get
    silence. A 1997 meter also answers reads sent to 99…99, as single meters on a bus do.
    """

    def __init__(
        self,
        address: str,
        load: LoadModel,
        version: Version = Version.V2007,
        *,
        clock: Clock | None = None,
        faults: Faults | None = None,
        password: bytes = DEFAULT_PASSWORD,
    ) -> None:
        self.address = parse_address(address)
        self.load = load
        self.version = version
        self.clock = clock or SystemClock()
        self.faults = faults or Faults()
        self.password = password
        self.baud: int | None = None
        self.clock_offset = timedelta(0)
        self._frozen: dict[str, Value] = {}
        self._dice = random.Random(self.faults.seed)
        self._sources = self._value_sources()

    # -- what the meter knows ---------------------------------------------------------------

    def _value_sources(self) -> dict[str, Callable[[datetime], Value]]:
        """Quantity name (as in the catalogue) → how to read it at a physical time."""
        load = self.load
        zero = Decimal(0)
        registers: dict[str, Callable[[datetime], Decimal]] = {
            "energy_import": load.energy_import_kwh,
            "energy_export": load.energy_export_kwh,
            "energy_combined": load.energy_import_kwh,  # import + export, export is 0
            "reactive_combined_1": load.reactive_import_kvarh,
            "reactive_combined_2": lambda t: zero,
            "reactive_import": load.reactive_import_kvarh,
            "reactive_export": lambda t: zero,
        }
        for k in (1, 2, 3, 4):
            registers[f"energy_import_t{k}"] = lambda t, k=k: load.tariff_import_kwh(t, k)
            registers[f"energy_combined_t{k}"] = registers[f"energy_import_t{k}"]
            registers[f"energy_export_t{k}"] = lambda t: zero
        sources: dict[str, Callable[[datetime], Value]] = {
            name: self._register(read) for name, read in registers.items()
        }
        for index, phase in enumerate("abc"):
            sources[f"voltage_{phase}"] = lambda t, i=index: load.voltage_v(t, i)
            sources[f"current_{phase}"] = lambda t, i=index: load.current_a(t, i)
            sources[f"power_{phase}"] = lambda t: load.power_kw(t) / 3
            sources[f"power_factor_{phase}"] = lambda t: load.power_factor
        sources |= {
            "power_total": load.power_kw,
            "reactive_power_total": load.reactive_power_kvar,
            "apparent_power_total": load.apparent_power_kva,
            "power_factor_total": lambda t: load.power_factor,
            "current_n": lambda t: zero,
            "frequency": load.frequency_hz,
            "meter_temperature": lambda t: Decimal("31.5"),
            "max_demand_import": lambda t: load.max_demand(t)[0],
            "max_demand_import_time": lambda t: load.max_demand(t)[1],
            "max_demand_export": lambda t: zero,
            "max_demand_export_time": lambda t: None,
            "meter_date": lambda t: self.local_time(t).date(),
            "meter_time": lambda t: self.local_time(t).time(),
            "meter_address": lambda t: self.address,
            "meter_number": lambda t: self.address,
        }
        return sources

    def _register(self, read: Callable[[datetime], Decimal]) -> Callable[[datetime], Decimal]:
        """An energy register as this meter shows it: replacement, offset, wrap at capacity."""
        faults = self.faults

        def shown(t: datetime) -> Decimal:
            value = read(t)
            if faults.replaced_at is not None and t >= faults.replaced_at:
                value = value - read(faults.replaced_at) + faults.replacement_start_kwh
            return (value + faults.register_offset_kwh) % (faults.capacity_kwh + CENT_KWH)

        return shown

    def local_time(self, t: datetime | None = None) -> datetime:
        """The meter's own wall-clock time (naive, in the load model's zone)."""
        now = self.clock.now() if t is None else t
        return (now + self.clock_offset).astimezone(self.load.tz).replace(tzinfo=None)

    def set_local_time(self, wall: datetime) -> None:
        """Set the meter's clock to ``wall`` (naive local time)."""
        self.clock_offset = wall.replace(tzinfo=self.load.tz) - self.clock.now()

    def values(self, items: Iterable[DataItem], t: datetime | None = None) -> dict[str, Value]:
        """Quantity → value for ``items`` at physical time ``t``, fitted to their formats.

        Raises KeyError for a quantity this meter does not have (e.g. frozen data before the
        first freeze).
        """
        now = self.clock.now() if t is None else t
        result: dict[str, Value] = {}
        for item in items:
            for f in item.fields:
                if f.quantity in self._frozen:
                    value = self._frozen[f.quantity]
                else:
                    value = self._sources[f.quantity](now)
                if isinstance(f.format, NumberFormat) and isinstance(value, Decimal):
                    value = f.format.quantize(value)
                result[f.quantity] = value
        return result

    def freeze(self) -> None:
        """Take a snapshot now into the instant-freeze table (05030001 time, 05030101 /
        05030201 energy) and, as this simulator has no schedule, the daily one (0506…)."""
        now = self.clock.now()
        stamp = self.local_time(now).replace(second=0, microsecond=0)
        for table in ("instant", "daily"):
            self._frozen[f"frozen_{table}_time"] = stamp
            for suffix in ("", "_t1", "_t2", "_t3", "_t4"):
                for kind in ("import", "export"):
                    value = self._sources[f"energy_{kind}{suffix}"](now)
                    self._frozen[f"frozen_{table}_energy_{kind}{suffix}"] = value

    # -- protocol -------------------------------------------------------------------------

    def handle(self, frame: Frame, preamble: int = 2) -> MeterAnswer | None:
        """The meter's reaction to a request frame heard on the line (None = silence)."""
        try:
            request = decode_request(frame, self.version)
        except FrameError:
            return None  # a garbled or foreign-dialect request: a real meter ignores it
        if not self._addressed(request):
            return None
        faults = self.faults
        # Throw every die on every request, so one fault's setting does not shift the others.
        dice = [self._dice.random() for _ in range(5)]
        garbage = self._dice.randbytes(faults.garbage_length)
        if dice[0] < faults.no_answer:
            return None
        reply = self._reply(request, frame.control)
        if reply is None:
            return None
        if dice[1] < faults.error_reply:
            reply = build_error_reply(self.address, frame.control, ["other"], self.version)
        data = encode_frame(reply, preamble)
        if dice[2] < faults.bad_checksum:
            data = data[:-2] + bytes(((data[-2] + 1) & 0xFF, data[-1]))
        if dice[3] < faults.garbage_before:
            data = garbage + data
        delay = faults.slow_extra_s if dice[4] < faults.slow else 0.0
        return MeterAnswer(data, delay)

    def _addressed(self, request: Request) -> bool:
        if request.address == BROADCAST:
            if isinstance(request, BroadcastTimeRequest | FreezeRequest):
                return True
            return self.version is Version.V1997 and isinstance(request, ReadRequest)
        if isinstance(request, WriteRequest | ChangeBaudRequest):
            return request.address == self.address  # never by wildcard
        return address_matches(request.address, self.address)

    def _error(self, control: int, bit: str) -> Frame:
        return build_error_reply(self.address, control, [bit], self.version)

    def _reply(self, request: Request, control: int) -> Frame | None:
        if isinstance(request, ReadRequest):
            items = items_for(request.di, self.version)
            if items is None:
                return self._error(control, "no_such_data")
            try:
                values = self.values(items)
            except KeyError:
                return self._error(control, "no_such_data")
            try:
                return build_read_reply(self.address, request.di, values, self.version)
            except InvalidValueError:
                return self._error(control, "other")  # e.g. power beyond XX.XXXX kW
        if isinstance(request, ReadFollowUpRequest):
            return self._error(control, "no_such_data")  # every reply fits in one frame
        if isinstance(request, ReadAddressRequest):
            return build_read_address_reply(self.address)
        if isinstance(request, BroadcastTimeRequest):
            self.set_local_time(request.time)
            return None
        if isinstance(request, FreezeRequest):
            self.freeze()
            return None if request.address == BROADCAST else build_ack(self.address, control)
        if isinstance(request, ChangeBaudRequest):
            self.baud = request.baud
            return build_change_baud_reply(self.address, request.baud)
        return self._write(request, control)

    def _write(self, request: WriteRequest, control: int) -> Frame:
        if request.password != self.password:
            return self._error(control, "unauthorized")
        items = items_for(request.di, self.version)
        if items is None:
            return self._error(control, "no_such_data")
        try:
            (reading,) = decode_values(items, request.payload)
        except (FrameError, ValueError):
            return self._error(control, "other")
        now = self.local_time()
        if isinstance(reading.value, date) and not isinstance(reading.value, datetime):
            self.set_local_time(datetime.combine(reading.value, now.time()))
        elif isinstance(reading.value, time):
            self.set_local_time(datetime.combine(now.date(), reading.value))
        else:
            return self._error(control, "unauthorized")  # only the clock is writable here
        return build_write_ack(self.address, self.version)


# -- the line -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineReply:
    """Bytes that come back on the line for one request, and when (s after the request)."""

    data: bytes
    delay_s: float


class Dlt645Line:
    """Several meters on one RS-485 line.

    Only addressed meters answer; when several do (a wildcard read with more than one meter
    on the line) their replies collide and come back as the bitwise OR of the bytes, which
    is what a listener sees when two drivers fight — garbage the parser must survive.
    ``reply_preamble`` is the number of FE before each reply (0, 2 or 4). With ``baud``
    set, a reply comes after the request's own transmission time (a meter hears the request
    only once its last byte is on the wire), ``turnaround_s``, and the reply's transmission
    time (11 bits per byte, 8E1).
    """

    def __init__(
        self,
        meters: Iterable[SimulatedMeter] = (),
        *,
        reply_preamble: int = 2,
        baud: int | None = None,
        turnaround_s: float = 0.020,
    ) -> None:
        if reply_preamble not in (0, 2, 4):
            raise ValueError(f"reply_preamble: expected 0, 2 or 4 FE, got {reply_preamble}")
        self.meters: list[SimulatedMeter] = []
        self.reply_preamble = reply_preamble
        self.baud = baud
        self.turnaround_s = turnaround_s
        self._bus = threading.Lock()  # one transaction at a time, whoever is asking
        for meter in meters:
            self.add(meter)

    def add(self, meter: SimulatedMeter) -> None:
        if any(m.address == meter.address for m in self.meters):
            raise ValueError(f"meter {meter.address} is already on this line")
        self.meters.append(meter)

    def answer(self, request: Frame) -> LineReply | None:
        """What comes back on the line for one request frame (None = silence)."""
        with self._bus:
            answers = [
                a for m in self.meters if (a := m.handle(request, self.reply_preamble)) is not None
            ]
        if not answers:
            return None
        data = answers[0].data
        for other in answers[1:]:
            width = max(len(data), len(other.data))
            ored = int.from_bytes(data.ljust(width, b"\0")) | int.from_bytes(
                other.data.ljust(width, b"\0")
            )
            data = ored.to_bytes(width)
        delay = max(a.delay_s for a in answers)
        if self.baud:
            delay += self.turnaround_s + len(data) * BITS_PER_CHARACTER / self.baud
        return LineReply(data, delay)

    def open_port(self) -> LinePort:
        """A connection to the line with its own receive buffer (one per client)."""
        return LinePort(self)

    def transact(self, request: bytes) -> bytes:
        """Send request bytes and collect every reply at once, ignoring delays (for tests)."""
        return b"".join(reply.data for reply in self.open_port().receive(request))


class LinePort:
    """One client's view of a line: request bytes in (any chunking), replies out."""

    def __init__(self, line: Dlt645Line) -> None:
        self.line = line
        self.parser = FrameParser()
        self._unanswered_bytes = 0  # request bytes on the wire since the last reply

    def receive(self, data: bytes) -> list[LineReply]:
        self.parser.feed(data)
        self._unanswered_bytes += len(data)
        replies = []
        for frame in self.parser:
            reply = self.line.answer(frame)
            if reply is None:
                continue
            if self.line.baud:
                request_s = self._unanswered_bytes * BITS_PER_CHARACTER / self.line.baud
                reply = LineReply(reply.data, reply.delay_s + request_s)
            self._unanswered_bytes = 0
            replies.append(reply)
        return replies


# -- servers --------------------------------------------------------------------------------


class Dlt645TcpServer(LineTcpServer):
    """A DL/T645 line behind a TCP port (see ``simulators.threaded``)."""

    def __init__(self, line: Dlt645Line) -> None:
        super().__init__()
        self.line = line

    def responder(self) -> Responder:
        port = self.line.open_port()
        return lambda data: [(r.data, r.delay_s) for r in port.receive(data)]


def serve_in_thread(
    line: Dlt645Line, host: str = "127.0.0.1", port: int = 0
) -> tuple[int, Callable[[], None]]:
    """Run a ``Dlt645TcpServer`` on its own event loop in a daemon thread.

    Returns the bound port and a function that stops the server and joins the thread.
    """
    return run_in_thread(Dlt645TcpServer(line), host, port, f"dlt645-tcp-{host}:{port}")


class Dlt645PtyServer(PtyLineServer):
    """A DL/T645 line on a pseudo-terminal (see ``simulators.pty_line``)."""

    name = "dlt645-pty"

    def __init__(self, line: Dlt645Line) -> None:
        super().__init__()
        self.line = line

    def responder(self) -> Responder:
        port = self.line.open_port()
        return lambda data: [(r.data, r.delay_s) for r in port.receive(data)]
