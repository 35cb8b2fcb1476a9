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


class ReadTimeout(DriverError):
    """No valid reply came from the meter within the timeout, after every retry.

    Shared by every line master (DL/T645, Modbus): on a real RS-485 line an absent or dead
    meter is silence, so the timeout is the only way to learn that it did not answer.
    """


class ProfileError(DriverError, ValueError):
    """A device profile (register map file) that cannot be used as written.

    ``path`` is the file, ``field`` the offending entry (e.g. ``fields[3] (voltage_a)``) or
    key (``max_registers``), ``None`` when the problem is the file as a whole.
    """

    def __init__(self, message: str, *, path: str, field: str | None = None) -> None:
        where = f"{path}: {field}" if field else path
        super().__init__(f"{where}: {message}")
        self.path = path
        self.field = field


class ModbusError(DriverError):
    """A Modbus transaction that went wrong in a way the protocol can name."""


# Names from the Modbus Application Protocol Specification V1.1b3, section 7.
MODBUS_EXCEPTION_NAMES = {
    0x01: "ILLEGAL FUNCTION",
    0x02: "ILLEGAL DATA ADDRESS",
    0x03: "ILLEGAL DATA VALUE",
    0x04: "SERVER DEVICE FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "SERVER DEVICE BUSY",
    0x08: "MEMORY PARITY ERROR",
    0x0A: "GATEWAY PATH UNAVAILABLE",
    0x0B: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}


class ModbusExceptionReply(ModbusError):
    """The device answered with a Modbus exception response (function code | 0x80).

    ``code`` is the exception code as sent, ``name`` its name in the Modbus specification
    (e.g. ``"ILLEGAL DATA ADDRESS"``), ``function`` the function code of the request.
    """

    def __init__(self, *, unit_id: int, function: int, code: int, where: str) -> None:
        self.unit_id = unit_id
        self.function = function
        self.code = code
        self.name = MODBUS_EXCEPTION_NAMES.get(code, "UNKNOWN EXCEPTION")
        super().__init__(
            f"unit {unit_id} on {where}: function {function:#04x} answered exception "
            f"{code:#04x} ({self.name})"
        )
