"""The one exception family of ``meter_drivers``: every error a codec or driver raises.

Messages say what was expected, what came instead, and where (a byte offset counted from
the start of the bytes the caller handed in, preamble included), so that a field engineer
reading a log line can find the bad byte in a pasted hex dump.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base of every error raised by ``meter_drivers``."""


class InvalidValueError(DriverError, ValueError):
    """A caller-supplied value (address, data identifier, register value, baud rate)
    cannot be put on the wire as asked."""


class FrameError(DriverError):
    """Bytes that do not form a well-made frame, or a frame whose content breaks the protocol.

    ``offset`` is the position of the offending byte in the input (``None`` when the
    problem is not tied to one byte).
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class ChecksumError(FrameError):
    """A frame whose checksum byte disagrees with the sum of its bytes.

    ``expected`` is the checksum computed from the frame, ``received`` the byte that came.
    """

    def __init__(self, message: str, *, expected: int, received: int, offset: int) -> None:
        super().__init__(message, offset)
        self.expected = expected
        self.received = received


class MeterErrorReply(DriverError):
    """A meter answered with an error reply (the abnormal-reply bit of the control byte set).

    ``code`` is the error byte as the meter sent it (0x33 offset removed); ``bits`` names
    each set bit in the dialect's vocabulary, e.g. ``["no_such_data"]``.
    """

    def __init__(
        self, message: str, *, code: int, bits: list[str], address: str, control: int
    ) -> None:
        super().__init__(message)
        self.code = code
        self.bits = bits
        self.address = address
        self.control = control
