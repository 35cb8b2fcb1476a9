"""Value formats of DL/T645 data fields: BCD numbers, digit strings, dates and times.

Every format works on raw field bytes as they stand in the DATA field once the 0x33 offset
is removed, low byte first. Formats are written as in the standard's appendix tables
("XXXXXX.XX", "YYMMDDhhmm", "NNNNNNNNNNNN"); each ``X``/``N`` is one BCD digit, two digits
per byte. Signed numbers carry the sign in bit 7 of the most significant byte
(DL/T645-2007 appendix A, note on 组合/功率/电流 values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from ..errors import FrameError, InvalidValueError

Value = Decimal | str | date | time | datetime | None


def _digits_of(raw: bytes, offset: int, what: str) -> str:
    """The BCD digits of ``raw`` most significant first; FrameError on a non-BCD nibble."""
    text = raw[::-1].hex()
    if not text.isdigit():
        raise FrameError(
            f"expected BCD digits for {what} at offset {offset}, got {raw.hex(' ')}", offset
        )
    return text


@dataclass(frozen=True)
class NumberFormat:
    """A BCD number such as ``XXXXXX.XX`` (4 bytes, two decimals), optionally signed."""

    pattern: str
    signed: bool = False
    length: int = field(init=False)
    decimals: int = field(init=False)

    def __post_init__(self) -> None:
        whole, _, fraction = self.pattern.partition(".")
        digits = len(whole) + len(fraction)
        if set(whole + fraction) != {"X"} or digits % 2:
            raise InvalidValueError(f"number pattern {self.pattern!r} must be X digits, even")
        object.__setattr__(self, "length", digits // 2)
        object.__setattr__(self, "decimals", len(fraction))

    @property
    def limit(self) -> Decimal:
        """Smallest magnitude that no longer fits (the sign bit takes 8 from the top digit)."""
        top = 8 if self.signed else 10
        return Decimal(top * 10 ** (2 * self.length - 1)).scaleb(-self.decimals)

    def decode(self, raw: bytes, offset: int = 0) -> Decimal:
        """Exact value of the field; never a float."""
        negative = self.signed and raw[-1] & 0x80
        if negative:
            raw = raw[:-1] + bytes((raw[-1] & 0x7F,))
        text = _digits_of(raw, offset, self.pattern)
        value = Decimal(text).scaleb(-self.decimals)
        return -value if negative else value

    def quantize(self, value: Decimal | int | str | float) -> Decimal:
        """Round a measured value to this format's resolution (half-even) for encoding."""
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-self.decimals), ROUND_HALF_EVEN)

    def encode(self, value: Decimal | int | str) -> bytes:
        """Field bytes for ``value``; rejects floats, extra decimals and out-of-range values."""
        if isinstance(value, float):
            raise InvalidValueError(
                f"{self.pattern}: pass Decimal, int or str, not float {value!r} "
                "(quantize() first for measured values)"
            )
        try:
            number = Decimal(value)
        except (InvalidOperation, TypeError, ValueError):
            raise InvalidValueError(f"{self.pattern}: expected a number, got {value!r}") from None
        if not number.is_finite():
            raise InvalidValueError(f"{self.pattern}: expected a finite number, got {value!r}")
        scaled = number.scaleb(self.decimals)
        if scaled != scaled.to_integral_value():
            raise InvalidValueError(
                f"{self.pattern}: expected at most {self.decimals} decimals, got {value}"
            )
        if number < 0 and not self.signed:
            raise InvalidValueError(f"{self.pattern}: expected a value >= 0, got {value}")
        if abs(number) >= self.limit:
            raise InvalidValueError(
                f"{self.pattern}{' signed' if self.signed else ''}: expected a magnitude "
                f"below {self.limit}, got {value}"
            )
        magnitude = abs(int(scaled))
        raw = bytearray(bytes.fromhex(f"{magnitude:0{2 * self.length}d}")[::-1])
        if number < 0:
            raw[-1] |= 0x80
        return bytes(raw)


@dataclass(frozen=True)
class DigitsFormat:
    """A digit string such as a meter number ``NNNNNNNNNNNN``, most significant digit first."""

    pattern: str
    length: int = field(init=False)

    def __post_init__(self) -> None:
        if set(self.pattern) != {"N"} or len(self.pattern) % 2:
            raise InvalidValueError(f"digit pattern {self.pattern!r} must be N digits, even")
        object.__setattr__(self, "length", len(self.pattern) // 2)

    def decode(self, raw: bytes, offset: int = 0) -> str:
        return _digits_of(raw, offset, self.pattern)

    def encode(self, value: str) -> bytes:
        width = 2 * self.length
        if not (isinstance(value, str) and value.isascii() and value.isdigit()):
            raise InvalidValueError(f"{self.pattern}: expected a digit string, got {value!r}")
        if len(value) > width:
            raise InvalidValueError(f"{self.pattern}: expected <= {width} digits, got {value!r}")
        return bytes.fromhex(value.zfill(width))[::-1]


# Which two-digit fields make up each calendar pattern, most significant first.
_CALENDAR_FIELDS = {"YY", "MM", "DD", "WW", "hh", "mm", "ss"}


@dataclass(frozen=True)
class CalendarFormat:
    """A BCD date and/or time such as ``YYMMDDhhmm``, ``YYMMDDWW`` or ``hhmmss``.

    Decodes to ``datetime`` (date and time fields), ``date`` or ``time``. Meters keep
    local wall-clock time, so datetimes are naive. ``YY`` is 2000 + YY. ``WW`` is the day of
    the week, 0 = Sunday. An all-zero field with a date (e.g. the time of a maximum demand
    that has not happened yet) decodes to ``None``; an all-zero ``hhmmss`` is midnight.
    """

    pattern: str
    length: int = field(init=False)
    parts: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        parts = tuple(self.pattern[i : i + 2] for i in range(0, len(self.pattern), 2))
        if len(self.pattern) % 2 or not set(parts) <= _CALENDAR_FIELDS:
            raise InvalidValueError(f"calendar pattern {self.pattern!r} is not YYMMDDWWhhmmss")
        # A date without its year (1997 MMDDhhmm) has no honest datetime: not supported.
        present = set(parts)
        dates = present & {"YY", "MM", "DD"}
        times = present & {"hh", "mm"}
        if dates not in (set(), {"YY", "MM", "DD"}) or times not in (set(), {"hh", "mm"}):
            raise InvalidValueError(f"calendar pattern {self.pattern!r} needs YYMMDD and hhmm")
        if not dates | times:
            raise InvalidValueError(f"calendar pattern {self.pattern!r} has no date or time")
        object.__setattr__(self, "length", len(parts))
        object.__setattr__(self, "parts", parts)

    def decode(self, raw: bytes, offset: int = 0) -> date | time | datetime | None:
        text = _digits_of(raw, offset, self.pattern)
        if not text.strip("0") and "YY" in self.parts:
            return None
        fields = {part: int(text[2 * i : 2 * i + 2]) for i, part in enumerate(self.parts)}
        try:
            if "YY" in fields:
                day = date(2000 + fields["YY"], fields["MM"], fields["DD"])
                if "hh" not in fields:
                    return day
                return datetime(
                    day.year, day.month, day.day, fields["hh"], fields["mm"], fields.get("ss", 0)
                )
            return time(fields["hh"], fields["mm"], fields.get("ss", 0))
        except ValueError:
            raise FrameError(
                f"expected a valid {self.pattern} at offset {offset}, got {raw.hex(' ')}", offset
            ) from None

    def encode(self, value: date | time | datetime | None) -> bytes:
        if value is None and "YY" in self.parts:
            return bytes(self.length)  # "not set", the mirror of decode
        if not isinstance(value, date | time):
            raise InvalidValueError(f"{self.pattern}: expected a date/time, got {value!r}")
        fields: dict[str, int] = {}
        if isinstance(value, date):
            if not 2000 <= value.year <= 2099:
                raise InvalidValueError(f"{self.pattern}: year {value.year} is outside 2000..2099")
            fields |= {"YY": value.year % 100, "MM": value.month, "DD": value.day}
            fields["WW"] = (value.weekday() + 1) % 7
        if isinstance(value, datetime | time):
            fields |= {"hh": value.hour, "mm": value.minute, "ss": value.second}
        try:
            text = "".join(f"{fields[part]:02d}" for part in self.parts)
        except KeyError as missing:
            raise InvalidValueError(
                f"{self.pattern}: {type(value).__name__} {value!r} has no {missing.args[0]} field"
            ) from None
        return bytes.fromhex(text)[::-1]


Format = NumberFormat | DigitsFormat | CalendarFormat
