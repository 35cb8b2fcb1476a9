"""DL/T645 replies: built by the meter (simulators), decoded by the master (gateway).

``decode_reply`` returns a typed reply and raises ``MeterErrorReply`` for an error reply, so
a caller that asked for a value either gets one or an exception naming the meter's error
bits — an error never passes as an empty result. Values are ``Decimal`` (energy is money).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import FrameError, InvalidValueError, MeterErrorReply
from .address import address_from_wire, address_to_wire
from .catalogue import (
    DecodedValue,
    decode_values,
    di_from_wire,
    di_to_wire,
    encode_values,
    items_for,
)
from .control import (
    BAUD_BY_CODE,
    BAUD_CODES,
    DIALECTS,
    ERROR_BIT,
    FUNCTION_MASK,
    MORE_BIT,
    REPLY_BIT,
    Control2007,
    Version,
    error_bit_names,
    error_code,
)
from .formats import Value
from .frame import HEADER_LENGTH, Frame


@dataclass(frozen=True)
class ReadReply:
    """A read reply: the DI asked for and its readings (several for a block DI).

    ``readings`` is empty when the DI is not in the catalogue; ``payload`` always holds the
    value bytes (offset removed) for such cases. ``seq`` is the follow-up frame number of a
    2007 follow-up reply, else None.
    """

    address: str
    di: str
    readings: tuple[DecodedValue, ...]
    payload: bytes
    more_follows: bool = False
    seq: int | None = None

    @property
    def value(self) -> Value:
        """The value of a single-value reply (ValueError for blocks and unknown DIs)."""
        return self._single().value

    @property
    def unit(self) -> str:
        """The unit of a single-value reply, e.g. "kWh"."""
        return self._single().unit

    def _single(self) -> DecodedValue:
        if len(self.readings) != 1:
            raise ValueError(f"DI {self.di} carries {len(self.readings)} readings; use .readings")
        return self.readings[0]


@dataclass(frozen=True)
class ReadAddressReply:
    """The meter's real address, answering a read-address request sent to the wildcard."""

    address: str


@dataclass(frozen=True)
class Acknowledgement:
    """A normal reply without data: a write or freeze was accepted."""

    address: str
    control: int


@dataclass(frozen=True)
class BaudChangedReply:
    """The meter confirms its new baud rate (bit/s)."""

    address: str
    baud: int


Reply = ReadReply | ReadAddressReply | Acknowledgement | BaudChangedReply


def _read_data(
    di: str,
    values: Value | Sequence[Value] | Mapping[str, Value] | bytes,
    version: Version,
) -> bytes:
    if isinstance(values, bytes | bytearray):
        return di_to_wire(di, version) + bytes(values)
    items = items_for(di, version)
    if items is None:
        raise InvalidValueError(
            f"no catalogue format for DI {di} (DL/T645-{version.value}); pass raw value bytes"
        )
    return di_to_wire(di, version) + encode_values(items, values)


def build_read_reply(
    address: str,
    di: str,
    values: Value | Sequence[Value] | Mapping[str, Value] | bytes,
    version: Version = Version.V2007,
    more: bool = False,
    seq: int | None = None,
) -> Frame:
    """A meter's answer to a read of ``di``.

    ``values`` is one value, a sequence in field order (block DIs: members in order), a
    mapping quantity → value, or raw value bytes. ``more`` sets the more-frames bit;
    ``seq`` makes it a reply to a follow-up read (2007 appends the sequence byte).
    """
    dialect = DIALECTS[version]
    function = dialect.read if seq is None else dialect.read_follow_up
    data = _read_data(di, values, version)
    if seq is not None and version is Version.V2007:
        data += bytes((seq,))
    return Frame(address, function | REPLY_BIT | (MORE_BIT if more else 0), data)


def build_error_reply(
    address: str,
    request_control: int,
    error_bits: int | list[str] | tuple[str, ...],
    version: Version = Version.V2007,
) -> Frame:
    """An abnormal reply to ``request_control`` carrying the error byte (bits by name)."""
    code = error_code(error_bits, version)
    return Frame(address, request_control & FUNCTION_MASK | REPLY_BIT | ERROR_BIT, bytes((code,)))


def build_read_address_reply(address: str) -> Frame:
    """DL/T645-2007 answer to a read-address request: the real address, in the DATA too."""
    return Frame(address, Control2007.READ_ADDRESS_REPLY, address_to_wire(address))


def build_ack(address: str, request_control: int) -> Frame:
    """A normal reply without data (write, freeze)."""
    return Frame(address, request_control & FUNCTION_MASK | REPLY_BIT, b"")


def build_write_ack(address: str, version: Version = Version.V2007) -> Frame:
    """A meter accepting a write."""
    return build_ack(address, DIALECTS[version].write)


def build_change_baud_reply(address: str, baud: int) -> Frame:
    """DL/T645-2007 confirmation of a baud-rate change (feature word echoed)."""
    if baud not in BAUD_CODES:
        raise InvalidValueError(f"baud rate: expected one of {list(BAUD_CODES)}, got {baud}")
    return Frame(address, Control2007.CHANGE_BAUD_REPLY, bytes((BAUD_CODES[baud],)))


def meter_error(frame: Frame, version: Version = Version.V2007) -> MeterErrorReply:
    """The exception describing an error reply (``frame.is_error`` must be true)."""
    if not frame.data:
        raise FrameError(
            f"expected an error byte at offset {HEADER_LENGTH} of error reply "
            f"0x{frame.control:02X}, got no data",
            HEADER_LENGTH,
        )
    code = frame.data[0]
    bits = error_bit_names(code, version)
    request = frame.control & FUNCTION_MASK
    return MeterErrorReply(
        f"meter {frame.address}: expected a normal reply to control 0x{request:02X}, got "
        f"error reply 0x{frame.control:02X} with error byte 0x{code:02X} at offset "
        f"{HEADER_LENGTH} ({', '.join(bits) or 'no bits set'})",
        code=code,
        bits=bits,
        address=frame.address,
        control=frame.control,
    )


def decode_reply(frame: Frame, version: Version = Version.V2007) -> Reply:
    """The typed reply carried by ``frame`` (master side); raises ``MeterErrorReply`` for an
    error reply and ``FrameError`` for a frame that is not a well-formed reply."""
    if not frame.is_reply:
        raise FrameError(
            f"expected a reply (control bit 7 set) at offset 8, got 0x{frame.control:02X}", 8
        )
    if frame.is_error:
        raise meter_error(frame, version)
    dialect = DIALECTS[version]
    function = frame.function
    data = frame.data
    if function in (dialect.read, dialect.read_follow_up):
        seq = None
        if function == dialect.read_follow_up and version is Version.V2007:
            if not data:
                raise FrameError(
                    f"expected DI, data and sequence number at offset {HEADER_LENGTH}, got no data",
                    HEADER_LENGTH,
                )
            data, seq = data[:-1], data[-1]
        size = dialect.di_length
        if len(data) < size:
            raise FrameError(
                f"expected a {size}-byte DI at offset {HEADER_LENGTH} of read reply "
                f"0x{frame.control:02X}, got {len(data)} bytes",
                HEADER_LENGTH,
            )
        di = di_from_wire(data[:size])
        payload = data[size:]
        items = items_for(di, version)
        readings = () if items is None else decode_values(items, payload, HEADER_LENGTH + size)
        return ReadReply(frame.address, di, readings, payload, frame.more_follows, seq)
    if function == dialect.read_address:
        if len(data) != 6:
            raise FrameError(
                f"expected a 6-byte address at offset {HEADER_LENGTH} of read-address reply, "
                f"got {len(data)} bytes",
                HEADER_LENGTH,
            )
        return ReadAddressReply(address_from_wire(data, HEADER_LENGTH))
    if function == dialect.change_baud:
        if len(data) != 1 or data[0] not in BAUD_BY_CODE:
            raise FrameError(
                f"expected one baud-rate feature byte at offset {HEADER_LENGTH}, "
                f"got {data.hex(' ') or 'no data'}",
                HEADER_LENGTH,
            )
        return BaudChangedReply(frame.address, BAUD_BY_CODE[data[0]])
    if function in (dialect.write, dialect.freeze):
        return Acknowledgement(frame.address, frame.control)
    raise FrameError(
        f"control 0x{frame.control:02X} at offset 8 is not a DL/T645-{version.value} reply "
        "this codec knows (read, read follow-up, read address, write, freeze, change baud)",
        8,
    )
