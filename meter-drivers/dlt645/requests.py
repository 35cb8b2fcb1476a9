"""DL/T645 requests: built by the master (gateway), decoded by the meter (simulators).

Builders return ``Frame`` values (encode them with ``encode_frame``); ``decode_request``
turns a received frame back into a typed request, raising ``FrameError`` when the frame
breaks the edition's rules. Data offsets in messages count from the first 68 of the frame
(DATA starts at offset 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..errors import FrameError, InvalidValueError
from .address import BROADCAST, WILDCARD
from .catalogue import di_from_wire, di_to_wire, encode_values, items_for
from .control import BAUD_BY_CODE, BAUD_CODES, DIALECTS, Control2007, Version
from .formats import CalendarFormat, Value
from .frame import HEADER_LENGTH, Frame

# DL/T645-2007 广播校时: data ss mm hh DD MM YY, seconds first (low byte first).
BROADCAST_TIME_FORMAT = CalendarFormat("YYMMDDhhmmss")
# DL/T645-2007 冻结命令: data mm hh DD MM; 99 in a field means "every" (periodic
# freezes), 99999999 an immediate freeze.
EVERY = 99
PASSWORD_LENGTH = 4
OPERATOR_LENGTH = 4


@dataclass(frozen=True)
class ReadRequest:
    address: str
    di: str


@dataclass(frozen=True)
class ReadFollowUpRequest:
    address: str
    di: str
    seq: int


@dataclass(frozen=True)
class ReadAddressRequest:
    address: str


@dataclass(frozen=True)
class WriteRequest:
    """``payload`` is the value bytes after DI, password and operator (offset removed)."""

    address: str
    di: str
    password: bytes
    operator: bytes | None
    payload: bytes


@dataclass(frozen=True)
class BroadcastTimeRequest:
    """``time`` is the meter's local wall-clock time (naive)."""

    address: str
    time: datetime


@dataclass(frozen=True)
class FreezeRequest:
    """Freeze schedule fields; ``EVERY`` (99) in a field means every minute/hour/day/month."""

    address: str
    minute: int
    hour: int
    day: int
    month: int

    @property
    def immediate(self) -> bool:
        return (self.minute, self.hour, self.day, self.month) == (EVERY,) * 4


@dataclass(frozen=True)
class ChangeBaudRequest:
    address: str
    baud: int


Request = (
    ReadRequest
    | ReadFollowUpRequest
    | ReadAddressRequest
    | WriteRequest
    | BroadcastTimeRequest
    | FreezeRequest
    | ChangeBaudRequest
)


def _bcd_byte(value: int, name: str, maximum: int) -> int:
    if not (0 <= value <= maximum or value == EVERY):
        raise InvalidValueError(f"freeze {name}: expected 0..{maximum} or {EVERY}, got {value}")
    return int(f"{value:02d}", 16)


def build_read(address: str, di: str, version: Version = Version.V2007) -> Frame:
    """Read data item ``di`` (a block DI reads all its members) from meter ``address``."""
    return Frame(address, DIALECTS[version].read, di_to_wire(di, version))


def build_read_follow_up(address: str, di: str, seq: int) -> Frame:
    """DL/T645-2007 read of follow-up frame ``seq`` (1..255) after a reply with more bit."""
    if not 0 <= seq <= 0xFF:
        raise InvalidValueError(f"follow-up sequence number must be 0..255, got {seq}")
    return Frame(address, Control2007.READ_FOLLOW_UP, di_to_wire(di) + bytes((seq,)))


def build_read_address() -> Frame:
    """DL/T645-2007 read of the communication address, sent to the wildcard address."""
    return Frame(WILDCARD, Control2007.READ_ADDRESS, b"")


def build_write(
    address: str,
    di: str,
    password: bytes,
    operator: bytes | None,
    value: Value | bytes,
    version: Version = Version.V2007,
) -> Frame:
    """Write ``value`` to data item ``di``.

    ``password`` is 4 bytes in wire order (2007: the privilege level PA first, then
    P0..P2). ``operator`` is the 4-byte operator code in 2007 and must be None in 1997,
    which has none. ``value`` is either raw value bytes or a value for the catalogue format.
    """
    dialect = DIALECTS[version]
    if len(password) != PASSWORD_LENGTH:
        raise InvalidValueError(f"password: expected 4 bytes, got {len(password)}")
    if version is Version.V2007 and (operator is None or len(operator) != OPERATOR_LENGTH):
        raise InvalidValueError(f"operator code: expected 4 bytes for 2007, got {operator!r}")
    if version is Version.V1997 and operator is not None:
        raise InvalidValueError("operator code: DL/T645-1997 writes carry none, pass None")
    if isinstance(value, bytes | bytearray):
        payload = bytes(value)
    else:
        items = items_for(di, version)
        if items is None:
            raise InvalidValueError(f"no catalogue format for DI {di}; pass the value as raw bytes")
        payload = encode_values(items, value)
    data = di_to_wire(di, version) + bytes(password) + bytes(operator or b"") + payload
    return Frame(address, dialect.write, data)


def build_broadcast_time(dt: datetime, version: Version = Version.V2007) -> Frame:
    """Set every meter's clock to ``dt``'s wall-clock fields (convert to the meters' local
    time first; any tzinfo is ignored). Meters do not reply."""
    return Frame(BROADCAST, DIALECTS[version].broadcast_time, BROADCAST_TIME_FORMAT.encode(dt))


def build_freeze(
    address: str, minute: int = EVERY, hour: int = EVERY, day: int = EVERY, month: int = EVERY
) -> Frame:
    """DL/T645-2007 freeze command (data mm hh DD MM); all ``EVERY`` freezes immediately.
    Sent to ``BROADCAST``, no meter replies."""
    data = bytes(
        (
            _bcd_byte(minute, "minute", 59),
            _bcd_byte(hour, "hour", 23),
            _bcd_byte(day, "day", 31),
            _bcd_byte(month, "month", 12),
        )
    )
    return Frame(address, Control2007.FREEZE, data)


def build_change_baud(address: str, baud: int) -> Frame:
    """DL/T645-2007 change of the meter's baud rate (2400, 4800 or 9600 bit/s)."""
    if baud not in BAUD_CODES:
        raise InvalidValueError(
            f"baud rate: expected one of {', '.join(map(str, BAUD_CODES))}, got {baud}"
        )
    return Frame(address, Control2007.CHANGE_BAUD, bytes((BAUD_CODES[baud],)))


def _expect_length(frame: Frame, expected: int, what: str, at_least: bool = False) -> None:
    if len(frame.data) < expected or (not at_least and len(frame.data) != expected):
        bound = "at least " if at_least else ""
        raise FrameError(
            f"expected {bound}{expected} data bytes ({what}) at offset {HEADER_LENGTH} for "
            f"control 0x{frame.control:02X}, got {len(frame.data)}",
            HEADER_LENGTH,
        )


def _bcd_value(raw: int, offset: int) -> int:
    text = f"{raw:02X}"
    if not text.isdigit():
        raise FrameError(f"expected a BCD byte at offset {offset}, got 0x{raw:02X}", offset)
    return int(text)


def decode_request(frame: Frame, version: Version = Version.V2007) -> Request:
    """The typed request carried by ``frame`` (meter side)."""
    dialect = DIALECTS[version]
    if frame.is_reply:
        raise FrameError(
            f"expected a request (control bit 7 clear) at offset 8, got 0x{frame.control:02X}",
            8,
        )
    control = frame.control
    di_length = dialect.di_length
    address = frame.address
    if control == dialect.read:
        _expect_length(frame, di_length, f"a {di_length}-byte DI")
        return ReadRequest(address, di_from_wire(frame.data))
    if control == dialect.read_follow_up and version is Version.V2007:
        _expect_length(frame, di_length + 1, "DI and sequence number")
        return ReadFollowUpRequest(address, di_from_wire(frame.data[:di_length]), frame.data[-1])
    if control == dialect.read_follow_up:
        _expect_length(frame, di_length, f"a {di_length}-byte DI")
        return ReadFollowUpRequest(address, di_from_wire(frame.data), 0)
    if control == dialect.read_address:
        _expect_length(frame, 0, "none")
        return ReadAddressRequest(address)
    if control == dialect.write:
        operator_length = OPERATOR_LENGTH if version is Version.V2007 else 0
        head = di_length + PASSWORD_LENGTH + operator_length
        _expect_length(frame, head, "DI, password and operator code", at_least=True)
        password = frame.data[di_length : di_length + PASSWORD_LENGTH]
        operator = frame.data[di_length + PASSWORD_LENGTH : head] if operator_length else None
        return WriteRequest(
            address, di_from_wire(frame.data[:di_length]), password, operator, frame.data[head:]
        )
    if control == dialect.broadcast_time:
        _expect_length(frame, BROADCAST_TIME_FORMAT.length, "ss mm hh DD MM YY")
        when = BROADCAST_TIME_FORMAT.decode(frame.data, HEADER_LENGTH)
        if not isinstance(when, datetime):
            raise FrameError(
                f"expected a date and time at offset {HEADER_LENGTH}, got all zeros",
                HEADER_LENGTH,
            )
        return BroadcastTimeRequest(address, when)
    if control == dialect.freeze:
        _expect_length(frame, 4, "mm hh DD MM")
        minute, hour, day, month = (
            _bcd_value(b, HEADER_LENGTH + i) for i, b in enumerate(frame.data)
        )
        return FreezeRequest(address, minute, hour, day, month)
    if control == dialect.change_baud:
        _expect_length(frame, 1, "baud-rate feature word")
        if frame.data[0] not in BAUD_BY_CODE:
            raise FrameError(
                f"expected one baud-rate bit (0x08, 0x10 or 0x20) at offset {HEADER_LENGTH}, "
                f"got 0x{frame.data[0]:02X}",
                HEADER_LENGTH,
            )
        return ChangeBaudRequest(address, BAUD_BY_CODE[frame.data[0]])
    known = sorted(
        c
        for c in (
            dialect.read,
            dialect.read_follow_up,
            dialect.read_address,
            dialect.write,
            dialect.broadcast_time,
            dialect.freeze,
            dialect.change_baud,
        )
        if c is not None
    )
    raise FrameError(
        f"control 0x{control:02X} at offset 8 is not a DL/T645-{version.value} request; "
        f"expected one of {', '.join(f'0x{c:02X}' for c in known)}",
        8,
    )
