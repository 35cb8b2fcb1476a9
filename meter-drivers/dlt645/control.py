"""DL/T645 dialects: the control-byte vocabulary and error-byte names of 2007 and 1997.

Control byte C (控制码, the same layout in both editions): bit 7 direction (1 = reply from the
meter), bit 6 abnormal reply, bit 5 more frames follow, bits 4..0 the function code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from ..errors import InvalidValueError

REPLY_BIT = 0x80
ERROR_BIT = 0x40
MORE_BIT = 0x20
FUNCTION_MASK = 0x1F


class Version(Enum):
    """Protocol edition; the value is the year as printed on the standard."""

    V2007 = "2007"
    V1997 = "1997"


class Control2007(IntEnum):
    """DL/T645-2007 control codes (requests, and the replies this codec decodes)."""

    BROADCAST_TIME = 0x08
    READ = 0x11
    READ_FOLLOW_UP = 0x12
    READ_ADDRESS = 0x13
    WRITE = 0x14
    FREEZE = 0x16
    CHANGE_BAUD = 0x17
    READ_REPLY = 0x91
    READ_REPLY_MORE = 0xB1
    READ_ERROR = 0xD1
    READ_FOLLOW_UP_REPLY = 0x92
    READ_FOLLOW_UP_REPLY_MORE = 0xB2
    READ_FOLLOW_UP_ERROR = 0xD2
    READ_ADDRESS_REPLY = 0x93
    WRITE_ACK = 0x94
    WRITE_ERROR = 0xD4
    FREEZE_ACK = 0x96
    FREEZE_ERROR = 0xD6
    CHANGE_BAUD_REPLY = 0x97
    CHANGE_BAUD_ERROR = 0xD7


class Control1997(IntEnum):
    """DL/T645-1997 control codes."""

    READ = 0x01
    READ_FOLLOW_UP = 0x02
    WRITE = 0x04
    BROADCAST_TIME = 0x08
    READ_REPLY = 0x81
    READ_REPLY_MORE = 0xA1
    READ_ERROR = 0xC1
    READ_FOLLOW_UP_REPLY = 0x82
    READ_FOLLOW_UP_REPLY_MORE = 0xA2
    READ_FOLLOW_UP_ERROR = 0xC2
    WRITE_ACK = 0x84
    WRITE_ERROR = 0xC4


@dataclass(frozen=True)
class Dialect:
    """What one edition of the standard calls each operation, and how long its DIs are.

    Function codes are the request control bytes; ``None`` where the edition has no such
    command. ``error_bits`` names bits 0..7 of the error byte (``None`` = reserved).
    """

    version: Version
    di_length: int
    read: int
    read_follow_up: int
    write: int
    broadcast_time: int
    read_address: int | None
    freeze: int | None
    change_baud: int | None
    error_bits: tuple[str | None, ...]


DIALECTS: dict[Version, Dialect] = {
    # DL/T645-2007 异常应答 error byte ERR: bit 0 其他错误, bit 1 无请求数据,
    # bit 2 密码错/未授权, bit 3 通信速率不能更改, bit 4 年时区数超, bit 5 日时段数超,
    # bit 6 费率数超, bit 7 reserved.
    Version.V2007: Dialect(
        version=Version.V2007,
        di_length=4,
        read=Control2007.READ,
        read_follow_up=Control2007.READ_FOLLOW_UP,
        write=Control2007.WRITE,
        broadcast_time=Control2007.BROADCAST_TIME,
        read_address=Control2007.READ_ADDRESS,
        freeze=Control2007.FREEZE,
        change_baud=Control2007.CHANGE_BAUD,
        error_bits=(
            "other",
            "no_such_data",
            "unauthorized",
            "baud_cannot_change",
            "year_zone_limit",
            "day_period_limit",
            "tariff_limit",
            None,
        ),
    ),
    # DL/T645-1997 异常应答 error byte: bit 0 非法数据, bit 1 数据标识错, bit 2 密码错,
    # bit 3 reserved, bits 4..6 as in 2007. Bit 1 (unknown data identifier) is named
    # "no_such_data" as in 2007 so callers branch on one name across editions.
    Version.V1997: Dialect(
        version=Version.V1997,
        di_length=2,
        read=Control1997.READ,
        read_follow_up=Control1997.READ_FOLLOW_UP,
        write=Control1997.WRITE,
        broadcast_time=Control1997.BROADCAST_TIME,
        read_address=None,
        freeze=None,
        change_baud=None,
        error_bits=(
            "illegal_data",
            "no_such_data",
            "unauthorized",
            None,
            "year_zone_limit",
            "day_period_limit",
            "tariff_limit",
            None,
        ),
    ),
}

# DL/T645-2007 更改通信速率: the baud-rate feature word Z, one bit per rate (docs/domain.md §1).
# The standard's word also has bits for 600, 1200 and 19200 bit/s; only the three rates
# docs/domain.md lists are accepted. Another rate is one more row here.
BAUD_CODES: dict[int, int] = {2400: 0x08, 4800: 0x10, 9600: 0x20}
BAUD_BY_CODE: dict[int, int] = {code: baud for baud, code in BAUD_CODES.items()}


def error_bit_names(code: int, version: Version) -> list[str]:
    """Name each set bit of an error byte, low bit first (``"bit7"`` for a reserved bit)."""
    names = DIALECTS[version].error_bits
    return [names[bit] or f"bit{bit}" for bit in range(8) if code >> bit & 1]


def error_code(bits: int | list[str] | tuple[str, ...], version: Version) -> int:
    """The error byte for named bits (or an int passed through after a range check)."""
    if isinstance(bits, int):
        if not 0 <= bits <= 0xFF:
            raise InvalidValueError(f"error byte must be 0..255, got {bits}")
        return bits
    names = DIALECTS[version].error_bits
    code = 0
    for name in bits:
        if name not in names:
            known = ", ".join(n for n in names if n)
            raise InvalidValueError(
                f"unknown DL/T645-{version.value} error bit {name!r}; expected one of {known}"
            )
        code |= 1 << names.index(name)
    return code
