"""The Modbus value codec: every data type in every word/byte order, both directions, with
known register vectors and property-based round trips."""

from __future__ import annotations

import math
import struct
from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meter_drivers.modbus import (
    ORDER_FAMILIES,
    DataType,
    InvalidValueError,
    decode_raw,
    decode_value,
    encode_raw,
    encode_value,
    order_family,
    order_for,
    shortest_decimal,
)

FAMILIES = list(ORDER_FAMILIES)
INTEGER_TYPES = [t for t in DataType if not t.is_float]
FLOAT_TYPES = [DataType.FLOAT32, DataType.FLOAT64]
# 8 types × 4 orders are each a test of their own; 30 examples apiece keeps the file fast.
PER_COMBINATION = settings(max_examples=30, deadline=None)


# -- known vectors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "registers"),
    [
        ("ABCD", [0x4366, 0x0000]),
        ("CDAB", [0x0000, 0x4366]),
        ("BADC", [0x6643, 0x0000]),
        ("DCBA", [0x0000, 0x6643]),
    ],
)
def test_float32_230_volts_in_each_order(order: str, registers: list[int]) -> None:
    assert encode_raw(230.0, DataType.FLOAT32, order) == registers
    assert decode_raw(registers, DataType.FLOAT32, order) == 230.0
    assert decode_value(registers, DataType.FLOAT32, order, Decimal(1)) == Decimal("230")


@pytest.mark.parametrize(
    ("data_type", "value", "vectors"),
    [
        (
            DataType.UINT32,
            0x12345678,
            {
                "ABCD": [0x1234, 0x5678],
                "CDAB": [0x5678, 0x1234],
                "BADC": [0x3412, 0x7856],
                "DCBA": [0x7856, 0x3412],
            },
        ),
        (
            DataType.INT32,
            -2,
            {
                "ABCD": [0xFFFF, 0xFFFE],
                "CDAB": [0xFFFE, 0xFFFF],
                "BADC": [0xFFFF, 0xFEFF],
                "DCBA": [0xFEFF, 0xFFFF],
            },
        ),
        (
            DataType.UINT64,
            0x0102030405060708,
            {
                "ABCDEFGH": [0x0102, 0x0304, 0x0506, 0x0708],
                "GHEFCDAB": [0x0708, 0x0506, 0x0304, 0x0102],
                "BADCFEHG": [0x0201, 0x0403, 0x0605, 0x0807],
                "HGFEDCBA": [0x0807, 0x0605, 0x0403, 0x0201],
            },
        ),
        (DataType.INT64, -1, {o: [0xFFFF] * 4 for o in ("ABCDEFGH", "HGFEDCBA")}),
        (
            DataType.FLOAT64,
            1.0,
            {
                "ABCDEFGH": [0x3FF0, 0, 0, 0],
                "GHEFCDAB": [0, 0, 0, 0x3FF0],
                "BADCFEHG": [0xF03F, 0, 0, 0],
                "HGFEDCBA": [0, 0, 0, 0xF03F],
            },
        ),
        (DataType.INT16, -1, {"AB": [0xFFFF], "BA": [0xFFFF]}),
        (DataType.UINT16, 0x1234, {"AB": [0x1234], "BA": [0x3412]}),
        (DataType.INT16, -32768, {"AB": [0x8000], "BA": [0x0080]}),
    ],
)
def test_known_register_vectors(
    data_type: DataType, value: int | float, vectors: dict[str, list[int]]
) -> None:
    for order, registers in vectors.items():
        assert encode_raw(value, data_type, order) == registers, order
        assert decode_raw(registers, data_type, order) == value, order


def test_a_32_bit_spelling_names_the_same_family_at_every_width() -> None:
    assert order_for("CDAB", DataType.FLOAT64) == "GHEFCDAB"
    assert order_for("CDAB", DataType.UINT16) == "AB"
    assert order_for("BADC", DataType.INT16) == "BA"
    assert order_for("DCBA", DataType.UINT64) == "HGFEDCBA"
    assert order_for("word_swap", DataType.INT32) == "CDAB"
    assert order_family("hgfedcba") == "little"


def test_float32_reads_as_the_shortest_decimal_a_meter_display_would_show() -> None:
    # 230.4 V as float32 is 230.399993896484375; the decimal that maps back is "230.4".
    assert decode_value([0x4366, 0x6666], DataType.FLOAT32, "ABCD", Decimal(1)) == Decimal("230.4")
    assert (
        str(shortest_decimal(struct.unpack(">f", struct.pack(">f", 0.1))[0], DataType.FLOAT32))
        == "0.1"
    )
    assert str(shortest_decimal(1e30, DataType.FLOAT64)) == "1" + "0" * 30
    assert shortest_decimal(math.inf, DataType.FLOAT32) == Decimal("Infinity")
    assert shortest_decimal(math.nan, DataType.FLOAT32).is_nan()


def test_scale_is_applied_in_exact_decimal_arithmetic() -> None:
    # 12345678 × 0.01 kWh: a float multiply would give 123456.78000000001.
    registers = encode_raw(12345678, DataType.UINT32, "ABCD")
    assert decode_value(registers, DataType.UINT32, "ABCD", Decimal("0.01")) == Decimal("123456.78")
    assert encode_value(Decimal("123456.78"), DataType.UINT32, "ABCD", Decimal("0.01")) == registers


# -- refusals -----------------------------------------------------------------------------------


def test_values_that_do_not_fit_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="does not fit int16"):
        encode_raw(40000, DataType.INT16, "AB")
    with pytest.raises(InvalidValueError, match="does not fit uint32"):
        encode_raw(-1, DataType.UINT32, "ABCD")
    with pytest.raises(InvalidValueError, match="does not fit float32"):
        encode_raw(1e39, DataType.FLOAT32, "ABCD")
    with pytest.raises(InvalidValueError, match="expected an integer"):
        encode_raw(1.5, DataType.INT32, "ABCD")


def test_a_value_off_the_scale_grid_is_refused_unless_a_rounding_is_given() -> None:
    with pytest.raises(InvalidValueError, match=r"not a whole multiple of the scale 0\.1"):
        encode_value(Decimal("230.05"), DataType.UINT16, "AB", Decimal("0.1"))
    assert encode_value(
        Decimal("230.05"), DataType.UINT16, "AB", Decimal("0.1"), rounding=ROUND_DOWN
    ) == [2300]


def test_wrong_register_count_bad_word_and_unknown_order_are_refused() -> None:
    with pytest.raises(InvalidValueError, match="expected 2 registers, got 1"):
        decode_raw([0x4366], DataType.FLOAT32, "ABCD")
    with pytest.raises(InvalidValueError, match=r"expected 0\.\.65535"):
        decode_raw([0x10000, 0], DataType.UINT32, "ABCD")
    with pytest.raises(InvalidValueError, match=r"byte order 'ACBD'"):
        order_for("ACBD", DataType.UINT32)


# -- properties ---------------------------------------------------------------------------------


def _values(data_type: DataType) -> st.SearchStrategy[int | float]:
    if data_type.is_float:
        return st.floats(width=data_type.width * 8, allow_nan=False)
    low, high = data_type.bounds()
    return st.integers(low, high)


def _registers(data_type: DataType) -> st.SearchStrategy[list[int]]:
    return st.lists(
        st.integers(0, 0xFFFF), min_size=data_type.registers, max_size=data_type.registers
    )


def _is_nan(registers: list[int], data_type: DataType, order: str) -> bool:
    value = decode_raw(registers, data_type, order)
    return isinstance(value, float) and math.isnan(value)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("data_type", list(DataType))
@PER_COMBINATION
@given(data=st.data())
def test_value_to_registers_and_back(data: st.DataObject, data_type: DataType, family: str) -> None:
    value = data.draw(_values(data_type))
    registers = encode_raw(value, data_type, family)
    assert len(registers) == data_type.registers
    assert all(0 <= word <= 0xFFFF for word in registers)
    decoded = decode_raw(registers, data_type, family)
    assert decoded == value
    if isinstance(value, float):
        assert math.copysign(1, decoded) == math.copysign(1, value)  # -0.0 stays -0.0


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("data_type", list(DataType))
@PER_COMBINATION
@given(data=st.data())
def test_registers_to_decimal_and_back_are_the_same_registers(
    data: st.DataObject, data_type: DataType, family: str
) -> None:
    registers = data.draw(_registers(data_type))
    if _is_nan(registers, data_type, family):
        return  # Decimal NaN keeps no payload bits; NaN is checked separately
    scale = (
        Decimal(1)
        if data_type.is_float
        else data.draw(
            st.sampled_from([Decimal(1), Decimal("0.1"), Decimal("0.01"), Decimal("0.001")])
        )
    )
    value = decode_value(registers, data_type, family, scale)
    assert encode_value(value, data_type, family, scale) == registers


@pytest.mark.parametrize("data_type", FLOAT_TYPES)
@given(data=st.data())
def test_shortest_decimal_is_shortest(data: st.DataObject, data_type: DataType) -> None:
    value = data.draw(st.floats(width=data_type.width * 8, allow_nan=False, allow_infinity=False))
    fmt = ">f" if data_type is DataType.FLOAT32 else ">d"
    text = shortest_decimal(value, data_type)
    assert struct.pack(fmt, float(text)) == struct.pack(fmt, value)
    digits = len(text.normalize().as_tuple().digits)  # significant digits only
    if digits > 1 and text != 0:
        shorter = float(f"{value:.{digits - 1}g}")
        try:
            same = struct.pack(fmt, shorter) == struct.pack(fmt, value)
        except OverflowError:  # rounds past the largest float32: certainly not the value
            same = False
        assert not same


def test_float32_extremes_read_as_decimals_that_write_back_the_same_bits() -> None:
    # A short candidate near the largest float32 rounds past it; it must not be chosen.
    for hex_bits in ("7f7fffff", "ff7fffff", "7f7fd70a", "00000001", "80000001", "00800000"):
        registers = [int(hex_bits[:4], 16), int(hex_bits[4:], 16)]
        value = decode_value(registers, DataType.FLOAT32, "ABCD", Decimal(1))
        assert encode_value(value, DataType.FLOAT32, "ABCD", Decimal(1)) == registers, hex_bits


def test_nan_reads_as_decimal_nan() -> None:
    assert decode_value([0x7FC0, 0x0000], DataType.FLOAT32, "ABCD", Decimal(1)).is_nan()
