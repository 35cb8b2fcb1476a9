"""Register words ↔ typed values for every Modbus data type and word/byte order; no I/O.

A Modbus register is a 16-bit word sent high byte first. Values wider than one register
(or meters that swap bytes) need an *order*: the value's big-endian bytes are lettered
A, B, C, … (A most significant), and the order spells the letters as they appear on the
wire, e.g. ``CDAB`` = low word first. Four families exist in the field, and each has one
spelling per width:

=========== ====== ======== ==================
family       16    32-bit   64-bit
=========== ====== ======== ==================
big          AB    ABCD     ABCDEFGH
word_swap    AB    CDAB     GHEFCDAB
byte_swap    BA    BADC     BADCFEHG
little       BA    DCBA     HGFEDCBA
=========== ====== ======== ==================

Values come out as ``decimal.Decimal`` after the field's scale. Integers are exact. A float
becomes the *shortest* decimal that converts back to the same float at its own width (the
float32 analogue of ``repr``): float32 230.1 reads as ``Decimal("230.1")``, not
``230.100006103515625``, and writing that Decimal back gives the same bits.
"""

from __future__ import annotations

import math
import struct
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from enum import StrEnum

from ..errors import InvalidValueError

# Enough digits for any float64 (up to ~1.8e308) written out without an exponent.
_WIDE_PRECISION = 800


class DataType(StrEnum):
    """A Modbus value type, as profiles spell it."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def width(self) -> int:
        """Size in bytes (2, 4 or 8)."""
        return int(self.value[-2:]) // 8

    @property
    def registers(self) -> int:
        """Number of 16-bit registers the value occupies."""
        return self.width // 2

    @property
    def is_float(self) -> bool:
        return self.value.startswith("float")

    @property
    def signed(self) -> bool:
        return self.value.startswith(("int", "float"))

    def bounds(self) -> tuple[int, int]:
        """Smallest and largest raw integer (integer types only)."""
        bits = self.width * 8
        if self.signed:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1


ORDER_FAMILIES: dict[str, dict[int, str]] = {
    "big": {2: "AB", 4: "ABCD", 8: "ABCDEFGH"},
    "word_swap": {2: "AB", 4: "CDAB", 8: "GHEFCDAB"},
    "byte_swap": {2: "BA", 4: "BADC", 8: "BADCFEHG"},
    "little": {2: "BA", 4: "DCBA", 8: "HGFEDCBA"},
}
# Every spelling → its family. "AB" and "BA" are shared by two families each; for a 16-bit
# value they mean the same thing, so mapping them to one family loses nothing.
_FAMILY_OF = {
    spelling: family
    for family, spellings in reversed(ORDER_FAMILIES.items())
    for spelling in spellings.values()
}
ORDERS_32 = tuple(ORDER_FAMILIES[f][4] for f in ORDER_FAMILIES)  # ABCD, CDAB, BADC, DCBA
ORDERS_64 = tuple(ORDER_FAMILIES[f][8] for f in ORDER_FAMILIES)


def order_family(order: str) -> str:
    """The family (``big``, ``word_swap``, ``byte_swap``, ``little``) of a spelling or name."""
    if order in ORDER_FAMILIES:
        return order
    try:
        return _FAMILY_OF[order.upper()]
    except KeyError:
        known = ", ".join(sorted(_FAMILY_OF, key=len))
        raise InvalidValueError(
            f"byte order {order!r}: expected a family name ({', '.join(ORDER_FAMILIES)}) "
            f"or one of {known}"
        ) from None


def order_for(order: str, data_type: DataType) -> str:
    """The spelling of ``order`` (any spelling or family name) at ``data_type``'s width.

    ``order_for("CDAB", DataType.FLOAT64) == "GHEFCDAB"``.
    """
    return ORDER_FAMILIES[order_family(order)][data_type.width]


def _permutation(order: str, width: int) -> list[int]:
    if len(order) != width or sorted(order) != [chr(ord("A") + i) for i in range(width)]:
        raise InvalidValueError(
            f"byte order {order!r}: expected a permutation of {width} letters from A"
        )
    return [ord(letter) - ord("A") for letter in order]


def registers_to_bytes(registers: list[int] | tuple[int, ...], order: str) -> bytes:
    """The value's big-endian bytes from the registers as they came off the wire."""
    for word in registers:
        if not 0 <= word <= 0xFFFF:
            raise InvalidValueError(f"register value {word!r}: expected 0..65535")
    wire = b"".join(word.to_bytes(2, "big") for word in registers)
    value = bytearray(len(wire))
    for position, source in enumerate(_permutation(order, len(wire))):
        value[source] = wire[position]
    return bytes(value)


def bytes_to_registers(value: bytes, order: str) -> list[int]:
    """The registers to put on the wire for a value's big-endian bytes."""
    wire = bytes(value[source] for source in _permutation(order, len(value)))
    return [int.from_bytes(wire[i : i + 2], "big") for i in range(0, len(wire), 2)]


def decode_raw(
    registers: list[int] | tuple[int, ...], data_type: DataType, order: str
) -> int | float:
    """The unscaled value (int, or float for float types) held by ``registers``."""
    if len(registers) != data_type.registers:
        raise InvalidValueError(
            f"{data_type}: expected {data_type.registers} registers, got {len(registers)}"
        )
    value = registers_to_bytes(registers, order_for(order, data_type))
    if data_type.is_float:
        return struct.unpack(">f" if data_type.width == 4 else ">d", value)[0]
    return int.from_bytes(value, "big", signed=data_type.signed)


def encode_raw(value: int | float, data_type: DataType, order: str) -> list[int]:
    """Registers holding the unscaled ``value`` (range-checked)."""
    if data_type.is_float:
        try:
            packed = struct.pack(">f" if data_type.width == 4 else ">d", float(value))
        except (OverflowError, struct.error) as exc:
            raise InvalidValueError(f"{value!r} does not fit {data_type}: {exc}") from exc
    else:
        if isinstance(value, float) or not isinstance(value, int):
            raise InvalidValueError(f"{data_type}: expected an integer, got {value!r}")
        low, high = data_type.bounds()
        if not low <= value <= high:
            raise InvalidValueError(f"{value} does not fit {data_type} ({low}..{high})")
        packed = value.to_bytes(data_type.width, "big", signed=data_type.signed)
    return bytes_to_registers(packed, order_for(order, data_type))


def shortest_decimal(value: float, data_type: DataType) -> Decimal:
    """The shortest decimal that converts back to the same ``value`` at the type's width.

    float64 uses ``repr``; float32 tries 1..9 significant digits (9 always suffice).
    NaN and infinities come out as Decimal NaN / Infinity.
    """
    if math.isnan(value) or math.isinf(value):
        return Decimal(repr(value))
    if data_type is DataType.FLOAT64:
        text = repr(value)
    else:
        target = _float32_bits(value)
        text = next(
            candidate
            for digits in range(1, 10)
            if _float32_bits(float(candidate := f"{value:.{digits}g}")) == target
        )
    result = Decimal(text)
    if result.as_tuple().exponent > 0:  # "2.3e+02" → 230, not Decimal("2.3E+2")
        with localcontext() as ctx:
            ctx.prec = _WIDE_PRECISION
            result = result.quantize(Decimal(1))
    return result


def _float32_bits(value: float) -> bytes | None:
    """The float32 encoding of ``value``; None when it rounds past the largest float32
    (a too-short candidate near ±3.4e38 can)."""
    try:
        return struct.pack(">f", value)
    except OverflowError:
        return None


def decode_value(
    registers: list[int] | tuple[int, ...], data_type: DataType, order: str, scale: Decimal
) -> Decimal:
    """The value held by ``registers``, times ``scale`` (exact decimal arithmetic)."""
    raw = decode_raw(registers, data_type, order)
    number = shortest_decimal(raw, data_type) if isinstance(raw, float) else Decimal(raw)
    with localcontext() as ctx:
        ctx.prec = _WIDE_PRECISION
        return number * scale


def encode_value(
    value: Decimal | int | str,
    data_type: DataType,
    order: str,
    scale: Decimal,
    *,
    rounding: str | None = None,
) -> list[int]:
    """Registers holding ``value`` (in the field's unit) divided by ``scale``.

    For integer types the quotient must be whole unless ``rounding`` (a ``decimal``
    rounding mode, e.g. ``ROUND_DOWN``) says how to make it so: a write of 230.05 V to a
    0.1 V register is refused rather than silently changed.
    """
    try:
        number = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise InvalidValueError(f"{value!r} is not a number") from exc
    with localcontext() as ctx:
        ctx.prec = _WIDE_PRECISION
        raw = number / scale
    if data_type.is_float:
        return encode_raw(float(raw), data_type, order)
    if not raw.is_finite():
        raise InvalidValueError(f"{value} does not fit {data_type}")
    whole = raw.to_integral_value(rounding=rounding or ROUND_HALF_EVEN)
    if rounding is None and whole != raw:
        raise InvalidValueError(
            f"{value} is not a whole multiple of the scale {scale} of this {data_type} register"
        )
    return encode_raw(int(whole), data_type, order)
