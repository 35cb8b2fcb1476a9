"""DL/T645 link frames: ``[FE..] 68 A0..A5 68 C L DATA CS 16`` to and from ``Frame`` values.

Sans-I/O: bytes in, frames out. DATA goes on the wire with 0x33 added to every byte; a
``Frame`` holds it with the offset removed. CS is the sum mod 256 of the bytes from the
first 68 through the last DATA byte as transmitted (DL/T645-2007 §4.1, docs/domain.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ChecksumError, FrameError, InvalidValueError
from .address import address_from_wire, address_to_wire, parse_address
from .control import ERROR_BIT, FUNCTION_MASK, MORE_BIT, REPLY_BIT

START = 0x68
END = 0x16
PREAMBLE = 0xFE
HEADER_LENGTH = 10  # 68, six address bytes, 68, C, L
# DL/T645-2007 §4.1 (数据域长度 L): L <= 200 for reads, <= 50 for writes; a larger L is
# noise, and bounding it bounds the parser's buffer.
MAX_DATA_LENGTH = 200

# bytes.translate tables shift a whole DATA field in C instead of per byte in Python.
PLUS_33 = bytes((b + 0x33) & 0xFF for b in range(256))
MINUS_33 = bytes((b - 0x33) & 0xFF for b in range(256))


@dataclass(frozen=True)
class Frame:
    """One frame: nameplate address, control byte, and DATA with the 0x33 offset removed."""

    address: str
    control: int
    data: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", parse_address(self.address))
        if not 0 <= self.control <= 0xFF:
            raise InvalidValueError(f"control byte must be 0..255, got {self.control}")
        object.__setattr__(self, "control", int(self.control))
        object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) > 0xFF:
            raise InvalidValueError(f"DATA holds at most 255 bytes, got {len(self.data)}")

    @property
    def is_reply(self) -> bool:
        """Sent by a meter (bit 7 of the control byte)."""
        return bool(self.control & REPLY_BIT)

    @property
    def is_error(self) -> bool:
        """An abnormal reply (bit 6 of a reply's control byte)."""
        return self.is_reply and bool(self.control & ERROR_BIT)

    @property
    def more_follows(self) -> bool:
        """A reply announcing further frames for the same read (bit 5)."""
        return self.is_reply and bool(self.control & MORE_BIT)

    @property
    def function(self) -> int:
        """The function code, bits 4..0 of the control byte (0x11 for a 2007 read)."""
        return self.control & FUNCTION_MASK


def encode_frame(frame: Frame, preamble: int = 4) -> bytes:
    """Wire bytes of ``frame``, led by ``preamble`` × FE (masters send 4, meters 0, 2 or 4)."""
    if preamble < 0:
        raise InvalidValueError(f"preamble must be >= 0 FE bytes, got {preamble}")
    body = (
        bytes((START,))
        + address_to_wire(frame.address)
        + bytes((START, frame.control, len(frame.data)))
        + frame.data.translate(PLUS_33)
    )
    return b"\xfe" * preamble + body + bytes((sum(body) & 0xFF, END))


# Outcomes of looking for a frame at one position; a positive value is the frame's length.
NEED_MORE = 0
BAD_SECOND_START = -1
BAD_LENGTH = -2
BAD_END = -3
BAD_CHECKSUM = -4


def frame_status(buf: bytes | bytearray, start: int, max_data_length: int) -> int:
    """Check for a frame whose first 68 is at ``buf[start]``; constant work per call apart
    from the checksum sum, which is bounded by the frame length."""
    available = len(buf) - start
    if available < 8:
        return NEED_MORE
    if buf[start + 7] != START:
        return BAD_SECOND_START
    if available < HEADER_LENGTH:
        return NEED_MORE
    length = buf[start + 9]
    if length > max_data_length:
        return BAD_LENGTH
    total = HEADER_LENGTH + length + 2
    if available < total:
        return NEED_MORE
    if buf[start + total - 1] != END:
        return BAD_END
    if sum(buf[start : start + total - 2]) & 0xFF != buf[start + total - 2]:
        return BAD_CHECKSUM
    return total


def frame_at(buf: bytes | bytearray, start: int, total: int) -> Frame:
    """The Frame of a checked span (see ``frame_status``); FrameError for a bad address."""
    address = address_from_wire(bytes(buf[start + 1 : start + 7]), start + 1)
    data = bytes(buf[start + HEADER_LENGTH : start + total - 2]).translate(MINUS_33)
    return Frame(address, buf[start + 8], data)


def decode_frame(raw: bytes, max_data_length: int = MAX_DATA_LENGTH) -> Frame:
    """Decode exactly one complete frame, led by any number of FE.

    Raises ``ChecksumError`` for a bad checksum and ``FrameError`` for anything else that is
    not one well-made frame (offsets count from the start of ``raw``, FE included).
    """
    raw = bytes(raw)
    start = len(raw) - len(raw.lstrip(b"\xfe"))
    if start == len(raw):
        raise FrameError(f"expected start byte 0x68 at offset {start}, got end of input", start)
    if raw[start] != START:
        raise FrameError(
            f"expected start byte 0x68 at offset {start}, got 0x{raw[start]:02X}", start
        )
    status = frame_status(raw, start, max_data_length)
    if status == NEED_MORE:
        needed = start + (
            HEADER_LENGTH + raw[start + 9] + 2 if len(raw) >= start + HEADER_LENGTH else 12
        )
        raise FrameError(
            f"truncated frame: expected at least {needed} bytes, got {len(raw)}", len(raw)
        )
    if status == BAD_SECOND_START:
        at = start + 7
        raise FrameError(f"expected second 0x68 at offset {at}, got 0x{raw[at]:02X}", at)
    if status == BAD_LENGTH:
        at = start + 9
        raise FrameError(
            f"expected data length L <= {max_data_length} at offset {at}, got {raw[at]}", at
        )
    total = HEADER_LENGTH + raw[start + 9] + 2
    if status == BAD_END:
        at = start + total - 1
        raise FrameError(f"expected end byte 0x16 at offset {at}, got 0x{raw[at]:02X}", at)
    if status == BAD_CHECKSUM:
        at = start + total - 2
        expected = sum(raw[start:at]) & 0xFF
        raise ChecksumError(
            f"checksum mismatch at offset {at}: expected 0x{expected:02X} "
            f"(sum of bytes {start}..{at - 1} mod 256), got 0x{raw[at]:02X}",
            expected=expected,
            received=raw[at],
            offset=at,
        )
    if start + total != len(raw):
        at = start + total
        raise FrameError(
            f"expected end of input after the end byte at offset {at - 1}, "
            f"got {len(raw) - at} more bytes",
            at,
        )
    return frame_at(raw, start, total)
