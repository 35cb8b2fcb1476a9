"""Behaviour of the DL/T645 codec: addresses, frames, values, requests, replies, framing."""

from __future__ import annotations

import time as clock
from datetime import date, datetime, time
from decimal import Decimal

import pytest

from meter_drivers.dlt645 import (
    BROADCAST,
    CATALOGUE,
    EVERY,
    WILDCARD,
    Acknowledgement,
    BaudChangedReply,
    BroadcastTimeRequest,
    ChangeBaudRequest,
    ChecksumError,
    Control1997,
    Control2007,
    DriverError,
    Frame,
    FrameError,
    FrameParser,
    FreezeRequest,
    InvalidValueError,
    MeterErrorReply,
    NumberFormat,
    ReadAddressReply,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    Version,
    WriteRequest,
    address_matches,
    address_to_wire,
    build_broadcast_time,
    build_change_baud,
    build_change_baud_reply,
    build_error_reply,
    build_freeze,
    build_read,
    build_read_address,
    build_read_address_reply,
    build_read_follow_up,
    build_read_reply,
    build_write,
    build_write_ack,
    decode_frame,
    decode_reply,
    decode_request,
    encode_frame,
    parse_address,
)

METER = "000000000161"
# Published capture (hwhale / legend): read forward active total from meter 000000000161.
READ_ENERGY = bytes.fromhex("68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16")


def wire(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text)


# -- addresses ---------------------------------------------------------------------------


def test_address_goes_on_the_wire_low_byte_first() -> None:
    assert address_to_wire("000000000161") == wire("61 01 00 00 00 00")
    assert address_to_wire("008866126775") == wire("75 67 12 66 88 00")


def test_short_address_is_left_padded_with_zeros() -> None:
    assert parse_address("161") == "000000000161"
    assert address_to_wire("161") == wire("61 01 00 00 00 00")


def test_address_with_non_digits_is_rejected_naming_the_character() -> None:
    with pytest.raises(InvalidValueError, match=r"got 'x' at position 3"):
        parse_address("161x")
    with pytest.raises(InvalidValueError, match="up to 12"):
        parse_address("1234567890123")
    with pytest.raises(InvalidValueError):
        parse_address("0A0000000161")  # AA only as whole high bytes


def test_wildcard_and_abbreviated_addresses_match_meters() -> None:
    assert parse_address("aaaaaaaaaaaa") == WILDCARD
    assert address_matches(WILDCARD, METER)
    assert address_matches("AAAAAAAA0161", METER)
    assert not address_matches("AAAAAAAA0162", METER)
    assert not address_matches(BROADCAST, METER)


# -- frames ------------------------------------------------------------------------------


def test_data_goes_on_the_wire_plus_0x33_and_checksum_covers_68_to_data() -> None:
    frame = build_read(METER, "00010000")

    assert frame.data == wire("00 00 01 00")
    assert encode_frame(frame, preamble=0) == READ_ENERGY
    assert encode_frame(frame) == b"\xfe" * 4 + READ_ENERGY  # FE is not in the checksum


def test_decode_accepts_any_number_of_preamble_bytes() -> None:
    for count in (0, 1, 3, 4, 9):
        assert decode_frame(b"\xfe" * count + READ_ENERGY) == build_read(METER, "00010000")


def test_frame_flags_come_from_the_control_byte() -> None:
    assert not Frame(METER, 0x11).is_reply
    assert Frame(METER, 0x91).is_reply and not Frame(METER, 0x91).is_error
    assert Frame(METER, 0xD1).is_error
    assert Frame(METER, 0xB1).more_follows and Frame(METER, 0xA1).more_follows
    assert not Frame(METER, 0x91).more_follows
    assert Frame(METER, 0xB1).function == 0x11


@pytest.mark.parametrize(
    ("raw", "message", "offset"),
    [
        (wire("FE FE 67") + READ_ENERGY[1:], "expected start byte 0x68 at offset 2, got 0x67", 2),
        (READ_ENERGY[:7] + b"\x00" + READ_ENERGY[8:], "expected second 0x68 at offset 7", 7),
        (READ_ENERGY[:-1] + b"\x17", "expected end byte 0x16 at offset 15, got 0x17", 15),
        (READ_ENERGY[:-3], "truncated frame: expected at least 16 bytes, got 13", 13),
        (READ_ENERGY + b"\x00", "expected end of input after the end byte at offset 15", 16),
        (b"\xfe\xfe", "expected start byte 0x68 at offset 2, got end of input", 2),
        (wire("68 61 01 00 00 00 00 68 11 C9"), "expected data length L <= 200 at offset 9", 9),
    ],
)
def test_malformed_frame_error_says_what_and_where(raw: bytes, message: str, offset: int) -> None:
    with pytest.raises(FrameError, match=message) as caught:
        decode_frame(raw)
    assert caught.value.offset == offset
    assert not isinstance(caught.value, ChecksumError)


def test_checksum_error_reports_expected_and_received() -> None:
    raw = b"\xfe\xfe" + READ_ENERGY[:-2] + b"\x15\x16"

    with pytest.raises(ChecksumError) as caught:
        decode_frame(raw)

    assert (caught.value.expected, caught.value.received, caught.value.offset) == (0x14, 0x15, 16)
    assert isinstance(caught.value, FrameError | DriverError)


def test_non_bcd_address_on_the_wire_is_a_frame_error() -> None:
    body = wire("68 6A 01 00 00 00 00 68 11 00")
    with pytest.raises(FrameError, match="BCD address at offset 1"):
        decode_frame(body + bytes((sum(body) & 0xFF, 0x16)))


# -- values ----------------------------------------------------------------------------------


def test_signed_current_uses_bit7_of_msb() -> None:
    current = CATALOGUE[Version.V2007]["02020100"].fields[0].format

    assert current.encode(Decimal("-1.234")) == wire("34 12 80")
    assert current.decode(wire("34 12 80")) == Decimal("-1.234")
    assert current.decode(wire("34 12 00")) == Decimal("1.234")


def test_unsigned_energy_uses_all_eight_digits() -> None:
    energy = CATALOGUE[Version.V2007]["00010000"].fields[0].format

    assert energy.decode(wire("99 99 99 99")) == Decimal("999999.99")
    assert energy.decode(wire("26 80 22 11")) == Decimal("112280.26")


def test_values_are_decimal_with_the_formats_exponent() -> None:
    reply = decode_reply(decode_frame(encode_frame(build_read_reply(METER, "00010000", 0))))

    assert isinstance(reply, ReadReply)
    assert type(reply.value) is Decimal
    assert str(reply.value) == "0.00"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (Decimal("1.234"), "at most 2 decimals"),
        (Decimal("1000000"), "magnitude below 1000000"),
        (Decimal("-1"), "expected a value >= 0"),
        (1.5, "not float"),
        ("abc", "expected a number"),
        (Decimal("NaN"), "finite"),
    ],
)
def test_bcd_encoding_rejects_values_that_do_not_fit(value: object, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        NumberFormat("XXXXXX.XX").encode(value)  # type: ignore[arg-type]


def test_signed_format_leaves_bit7_for_the_sign() -> None:
    power = NumberFormat("XX.XXXX", signed=True)

    assert power.encode(Decimal("79.9999")) == wire("99 99 79")
    with pytest.raises(InvalidValueError, match="below 80"):
        power.encode(Decimal("80"))


def test_measured_values_are_quantized_half_even_before_encoding() -> None:
    voltage = NumberFormat("XXX.X")

    assert voltage.quantize(229.95) == Decimal("230.0")
    assert voltage.quantize(Decimal("229.85")) == Decimal("229.8")


def test_non_bcd_value_byte_is_a_frame_error_at_its_offset() -> None:
    frame = Frame(METER, 0x91, wire("00 00 01 00 0A 00 00 00"))

    with pytest.raises(FrameError, match=r"expected BCD digits for XXXXXX\.XX at offset 14") as e:
        decode_reply(frame)
    assert e.value.offset == 14


# -- replies ---------------------------------------------------------------------------------


def test_block_read_reply_expands_to_total_and_tariffs() -> None:
    values = ["100.00", "10.00", "20.00", "30.00", "40.00"]
    frame = build_read_reply(METER, "0001FF00", values)

    reply = decode_reply(decode_frame(encode_frame(frame)))

    assert isinstance(reply, ReadReply)
    assert [(r.di, r.quantity, r.value, r.unit) for r in reply.readings] == [
        ("00010000", "energy_import", Decimal("100.00"), "kWh"),
        ("00010100", "energy_import_t1", Decimal("10.00"), "kWh"),
        ("00010200", "energy_import_t2", Decimal("20.00"), "kWh"),
        ("00010300", "energy_import_t3", Decimal("30.00"), "kWh"),
        ("00010400", "energy_import_t4", Decimal("40.00"), "kWh"),
    ]
    with pytest.raises(ValueError, match="carries 5 readings"):
        _ = reply.value


def test_voltage_block_reads_three_phases() -> None:
    frame = build_read_reply(
        METER, "0201FF00", {"voltage_a": 220, "voltage_b": "221.5", "voltage_c": Decimal("219.9")}
    )

    reply = decode_reply(frame)

    assert isinstance(reply, ReadReply)
    assert [(r.quantity, r.value, r.unit) for r in reply.readings] == [
        ("voltage_a", Decimal("220.0"), "V"),
        ("voltage_b", Decimal("221.5"), "V"),
        ("voltage_c", Decimal("219.9"), "V"),
    ]


def test_block_reply_of_the_wrong_length_names_expected_bytes() -> None:
    frame = Frame(METER, 0x91, wire("00 FF 01 02") + bytes(5))

    with pytest.raises(FrameError, match="expected 6 value bytes for 02010100, 02010200, 02010300"):
        decode_reply(frame)


def test_max_demand_reply_carries_value_and_time() -> None:
    frame = build_read_reply(METER, "01010000", [Decimal("12.3456"), datetime(2025, 3, 4, 18, 45)])

    reply = decode_reply(decode_frame(encode_frame(frame)))

    assert isinstance(reply, ReadReply)
    assert [(r.quantity, r.value, r.unit) for r in reply.readings] == [
        ("max_demand_import", Decimal("12.3456"), "kW"),
        ("max_demand_import_time", datetime(2025, 3, 4, 18, 45), ""),
    ]


def test_meter_date_carries_day_of_week_with_sunday_zero() -> None:
    frame = build_read_reply(METER, "04000101", date(2025, 3, 9))  # a Sunday

    assert frame.data[4:] == wire("00 09 03 25")
    reply = decode_reply(frame)
    assert isinstance(reply, ReadReply) and reply.value == date(2025, 3, 9)


def test_midnight_is_a_time_but_an_all_zero_timestamp_is_unset() -> None:
    midnight = decode_reply(Frame(METER, 0x91, wire("02 01 00 04 00 00 00")))

    assert isinstance(midnight, ReadReply) and midnight.value == time(0, 0, 0)


def test_meter_time_and_unset_demand_time() -> None:
    time_reply = decode_reply(build_read_reply(METER, "04000102", time(13, 5, 59)))
    demand_reply = decode_reply(Frame(METER, 0x91, wire("00 00 01 01") + bytes(8)))

    assert isinstance(time_reply, ReadReply) and time_reply.value == time(13, 5, 59)
    assert isinstance(demand_reply, ReadReply)
    assert demand_reply.readings[1].value is None  # no demand recorded yet


def test_unknown_di_reply_keeps_raw_payload() -> None:
    reply = decode_reply(Frame(METER, 0x91, wire("FF 22 80 02 12 34")))

    assert isinstance(reply, ReadReply)
    assert (reply.di, reply.readings, reply.payload) == ("028022FF", (), wire("12 34"))


def test_error_reply_names_its_bits() -> None:
    frame = build_error_reply(METER, Control2007.READ, ["no_such_data"])

    assert (frame.control, frame.data) == (0xD1, b"\x02")
    assert encode_frame(frame, 0)[10] == 0x35  # the error byte is sent +0x33 too
    with pytest.raises(MeterErrorReply) as caught:
        decode_reply(decode_frame(encode_frame(frame)))

    error = caught.value
    assert (error.code, error.bits, error.address, error.control) == (
        2,
        ["no_such_data"],
        METER,
        0xD1,
    )
    assert "expected a normal reply to control 0x11" in str(error)
    assert "error byte 0x02 at offset 10 (no_such_data)" in str(error)


def test_every_2007_error_bit_has_its_standard_name() -> None:
    with pytest.raises(MeterErrorReply) as caught:
        decode_reply(Frame(METER, 0xD4, b"\x7f"))

    assert caught.value.bits == [
        "other",
        "no_such_data",
        "unauthorized",
        "baud_cannot_change",
        "year_zone_limit",
        "day_period_limit",
        "tariff_limit",
    ]


def test_1997_error_reply_uses_the_1997_bit_names() -> None:
    frame = build_error_reply(
        METER, Control1997.READ, ["illegal_data", "no_such_data"], Version.V1997
    )

    assert frame.control == 0xC1
    with pytest.raises(MeterErrorReply) as caught:
        decode_reply(frame, Version.V1997)
    assert caught.value.bits == ["illegal_data", "no_such_data"]
    with pytest.raises(InvalidValueError, match="unknown DL/T645-1997 error bit 'other'"):
        build_error_reply(METER, Control1997.READ, ["other"], Version.V1997)


def test_wildcard_read_reply_carries_real_address() -> None:
    request = build_read_address()
    assert (request.address, request.control, request.data) == (WILDCARD, 0x13, b"")

    reply_frame = decode_frame(encode_frame(build_read_address_reply(METER)))

    assert reply_frame.address == METER
    assert decode_reply(reply_frame) == ReadAddressReply(METER)


def test_more_follows_and_follow_up_sequence_number() -> None:
    first = decode_reply(build_read_reply(METER, "00010000", "1.00", more=True))
    follow_up_request = build_read_follow_up(METER, "00010000", seq=1)
    second = decode_reply(build_read_reply(METER, "00010000", "2.00", seq=1))

    assert isinstance(first, ReadReply) and first.more_follows and first.seq is None
    assert follow_up_request.control == 0x12
    assert decode_request(follow_up_request) == ReadFollowUpRequest(METER, "00010000", 1)
    assert isinstance(second, ReadReply)
    assert (second.seq, second.value, second.more_follows) == (1, Decimal("2.00"), False)


def test_reply_of_the_other_edition_is_rejected() -> None:
    frame_2007 = build_read_reply(METER, "00010000", "1.00")

    with pytest.raises(FrameError, match="0x91 at offset 8 is not a DL/T645-1997 reply"):
        decode_reply(frame_2007, Version.V1997)


def test_requests_and_replies_are_not_confused() -> None:
    with pytest.raises(FrameError, match="expected a reply"):
        decode_reply(build_read(METER, "00010000"))
    with pytest.raises(FrameError, match="expected a request"):
        decode_request(build_read_reply(METER, "00010000", 0))


# -- 1997 ---------------------------------------------------------------------------------


def test_1997_read_uses_control_01_and_a_two_byte_di() -> None:
    frame = build_read("000000063295", "9010", Version.V1997)

    assert (frame.control, frame.data) == (0x01, wire("10 90"))
    assert encode_frame(frame, 0)[10:12] == wire("43 C3")
    assert decode_request(frame, Version.V1997) == ReadRequest("000000063295", "9010")


def test_1997_instantaneous_formats() -> None:
    voltage = decode_reply(build_read_reply(METER, "B611", 220, Version.V1997), Version.V1997)
    current = decode_reply(build_read_reply(METER, "B621", "5.25", Version.V1997), Version.V1997)
    power = decode_reply(build_read_reply(METER, "B630", "1.2345", Version.V1997), Version.V1997)

    assert isinstance(voltage, ReadReply) and (voltage.value, voltage.unit) == (220, "V")
    assert voltage.readings[0].value == Decimal(220)
    assert len(build_read_reply(METER, "B611", 220, Version.V1997).data) == 2 + 2
    assert isinstance(current, ReadReply) and (current.value, current.unit) == (
        Decimal("5.25"),
        "A",
    )
    assert isinstance(power, ReadReply) and (power.value, power.unit) == (Decimal("1.2345"), "kW")


def test_1997_block_901f_is_total_and_four_tariffs() -> None:
    reply = decode_reply(
        build_read_reply(METER, "901F", ["5", "1", "1", "1", "2"], Version.V1997), Version.V1997
    )

    assert isinstance(reply, ReadReply)
    assert [r.di for r in reply.readings] == ["9010", "9011", "9012", "9013", "9014"]


# -- other requests ---------------------------------------------------------------------------


def test_broadcast_time_sends_seconds_first() -> None:
    frame = build_broadcast_time(datetime(2024, 5, 6, 7, 8, 9))

    assert (frame.address, frame.control) == (BROADCAST, 0x08)
    assert frame.data == wire("09 08 07 06 05 24")
    assert decode_request(frame) == BroadcastTimeRequest(BROADCAST, datetime(2024, 5, 6, 7, 8, 9))


def test_freeze_data_is_minute_hour_day_month() -> None:
    frame = build_freeze(METER, 30, 23, 1, 12)

    assert (frame.control, frame.data) == (0x16, wire("30 23 01 12"))
    assert decode_request(frame) == FreezeRequest(METER, 30, 23, 1, 12)
    immediate = decode_request(build_freeze(BROADCAST))
    assert isinstance(immediate, FreezeRequest) and immediate.immediate
    assert build_freeze(BROADCAST).data == bytes((0x99,) * 4)
    with pytest.raises(InvalidValueError, match=r"freeze hour: expected 0\.\.23 or 99, got 24"):
        build_freeze(METER, 0, 24, EVERY, EVERY)


@pytest.mark.parametrize(("baud", "code"), [(2400, 0x08), (4800, 0x10), (9600, 0x20)])
def test_change_baud_sets_one_bit_per_rate(baud: int, code: int) -> None:
    frame = build_change_baud(METER, baud)

    assert (frame.control, frame.data) == (0x17, bytes((code,)))
    assert decode_request(frame) == ChangeBaudRequest(METER, baud)
    assert decode_reply(build_change_baud_reply(METER, baud)) == BaudChangedReply(METER, baud)


def test_unsupported_baud_rate_is_rejected() -> None:
    with pytest.raises(InvalidValueError, match="expected one of 2400, 4800, 9600, got 1200"):
        build_change_baud(METER, 1200)


def test_write_carries_di_password_operator_and_value() -> None:
    password, operator = wire("02 11 22 33"), wire("01 02 03 04")

    frame = build_write(METER, "04000102", password, operator, time(8, 30, 0))

    assert frame.control == 0x14
    assert frame.data == wire("02 01 00 04") + password + operator + wire("00 30 08")
    assert decode_request(frame) == WriteRequest(
        METER, "04000102", password, operator, wire("00 30 08")
    )
    assert decode_reply(build_write_ack(METER)) == Acknowledgement(METER, 0x94)


def test_1997_write_has_no_operator_code() -> None:
    frame = build_write(METER, "C011", wire("00 00 00 00"), None, time(8, 30), Version.V1997)

    assert frame.control == 0x04
    request = decode_request(frame, Version.V1997)
    assert isinstance(request, WriteRequest) and request.operator is None
    with pytest.raises(InvalidValueError, match="1997 writes carry none"):
        build_write(METER, "C011", wire("00 00 00 00"), wire("00 00 00 00"), time(8), Version.V1997)


def test_unknown_request_control_lists_the_known_ones() -> None:
    with pytest.raises(FrameError, match=r"control 0x1F .* expected one of 0x08, 0x11"):
        decode_request(Frame(METER, 0x1F))


# -- stream parser ----------------------------------------------------------------------------


def test_parser_waits_for_the_rest_of_a_partial_frame() -> None:
    parser = FrameParser()

    parser.feed(b"\xfe\xfe" + READ_ENERGY[:9])
    assert parser.next_frame() is None
    parser.feed(READ_ENERGY[9:])

    assert parser.next_frame() == build_read(METER, "00010000")
    assert parser.next_frame() is None
    assert parser.garbage_bytes == 0


def test_parser_counts_garbage_but_not_preamble() -> None:
    parser = FrameParser()

    parser.feed(wire("00 11 FE FE") + READ_ENERGY + wire("22"))

    assert list(parser) == [build_read(METER, "00010000")]
    assert parser.garbage_bytes == 3


def test_parser_drops_bad_checksum_frames_and_counts_them() -> None:
    parser = FrameParser()
    corrupt = READ_ENERGY[:-2] + b"\x00\x16"

    parser.feed(corrupt + READ_ENERGY)

    assert list(parser) == [build_read(METER, "00010000")]
    assert parser.checksum_errors == 1


def test_parser_finds_a_frame_that_starts_inside_a_false_start() -> None:
    # A stray 68 whose 7th next byte is a 68 looks like a header until its end byte fails.
    parser = FrameParser()
    false_start = wire("68 00 00 00 00 00 00")

    parser.feed(false_start + READ_ENERGY)

    assert list(parser) == [build_read(METER, "00010000")]


def test_parser_buffer_stays_bounded_on_hostile_input() -> None:
    parser = FrameParser()
    fake_header = wire("68 00 00 00 00 00 00 68 11 C8")  # promises 200 bytes, never ends well

    for _ in range(2_000):
        parser.feed(fake_header * 10)
        assert parser.buffered <= 12 + 200

    assert parser.next_frame() is None


def test_parser_is_linear_on_a_megabyte_of_start_bytes() -> None:
    parser = FrameParser()
    started = clock.perf_counter()

    parser.feed(b"\x68" * 1_000_000)

    assert clock.perf_counter() - started < 5.0  # quadratic rescans would take hours
    assert parser.garbage_bytes >= 1_000_000 - 212
