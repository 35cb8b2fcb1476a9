"""The DL/T645 codec against published frames (tests/data/dlt645_vectors.json).

Vectors with ``valid: true`` must decode to their stated value and unit and be rebuilt byte
for byte; the others are published mistakes, and each test below pins the mistake its note
describes.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meter_drivers.dlt645 import (
    BROADCAST,
    ChecksumError,
    Frame,
    FrameError,
    ReadAddressReply,
    ReadReply,
    Version,
    build_broadcast_time,
    build_read,
    build_read_address,
    build_read_address_reply,
    build_read_reply,
    decode_frame,
    decode_reply,
    decode_request,
    encode_frame,
)

VECTORS_PATH = Path(__file__).parents[1] / "data" / "dlt645_vectors.json"


def _load_vectors() -> list[dict[str, Any]]:
    if not VECTORS_PATH.is_file():
        pytest.fail(
            f"DL/T645 test vectors missing: expected {VECTORS_PATH} (tests/data/README.md)",
            pytrace=False,
        )
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


VECTORS = _load_vectors()
VALID = [v for v in VECTORS if v["valid"]]
VALID_REQUESTS = [v for v in VALID if v["direction"] == "request"]
VALID_RESPONSES = [v for v in VALID if v["direction"] == "response"]
BAD_CHECKSUM = [v for v in VECTORS if not v["checksum_ok"]]


def _id(vector: dict[str, Any]) -> str:
    return f"{vector['version']}-{vector['direction']}-{vector['hex'].replace(' ', '')}"


def _raw(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex(vector["hex"])


def _one(note_fragment: str) -> dict[str, Any]:
    matches = [v for v in VECTORS if note_fragment in v["note"]]
    assert len(matches) == 1, f"expected one vector noting {note_fragment!r}, got {len(matches)}"
    return matches[0]


def _expected_value(vector: dict[str, Any]) -> Decimal | str:
    value = vector["value"]
    return value if isinstance(value, str) else Decimal(str(value))


def test_vector_file_holds_forty_frames() -> None:
    assert len(VECTORS) == 40


@pytest.mark.parametrize("vector", VALID, ids=_id)
def test_valid_frame_decodes_to_its_address_control_and_data(vector: dict[str, Any]) -> None:
    frame = decode_frame(_raw(vector))

    assert frame.address == vector["address"]
    assert frame.control == int(vector["control"], 16)
    assert frame.data.hex().upper() == vector["data_minus33"].upper()


@pytest.mark.parametrize("vector", VALID_RESPONSES, ids=_id)
def test_valid_reply_decodes_to_its_value_and_unit(vector: dict[str, Any]) -> None:
    reply = decode_reply(decode_frame(_raw(vector)), Version(vector["version"]))

    if isinstance(reply, ReadAddressReply):
        assert reply.address == vector["value"]
        return
    assert isinstance(reply, ReadReply)
    assert reply.di == vector["di"]
    assert reply.value == _expected_value(vector)
    assert isinstance(reply.value, Decimal | str)
    assert reply.unit == vector["unit"]


@pytest.mark.parametrize("vector", VALID_RESPONSES, ids=_id)
def test_valid_reply_is_rebuilt_byte_for_byte(vector: dict[str, Any]) -> None:
    version = Version(vector["version"])
    if vector["di"] is None:
        frame = build_read_address_reply(vector["value"])
    else:
        frame = build_read_reply(vector["address"], vector["di"], _expected_value(vector), version)

    assert encode_frame(frame, preamble=vector["preamble_fe"]) == _raw(vector)


@pytest.mark.parametrize("vector", VALID_REQUESTS, ids=_id)
def test_valid_request_is_rebuilt_byte_for_byte(vector: dict[str, Any]) -> None:
    version = Version(vector["version"])
    control = int(vector["control"], 16)
    if vector["di"] is not None:
        frame = build_read(vector["address"], vector["di"], version)
    elif control == 0x13:
        frame = build_read_address()
    else:
        # The L=0 broadcast time (see the test below): no builder makes a malformed request,
        # so rebuild it from address and control alone.
        frame = Frame(vector["address"], control)

    assert frame.control == control
    assert encode_frame(frame, preamble=0) == _raw(vector).lstrip(b"\xfe")
    assert encode_frame(frame, preamble=vector["preamble_fe"]) == _raw(vector)


@pytest.mark.parametrize("vector", BAD_CHECKSUM, ids=_id)
def test_published_wrong_checksum_is_rejected(vector: dict[str, Any]) -> None:
    raw = _raw(vector)

    with pytest.raises(ChecksumError) as caught:
        decode_frame(raw)

    assert caught.value.expected == int(vector["checksum_expected"], 16)
    assert caught.value.received == raw[-2]
    assert caught.value.offset == len(raw) - 2
    assert f"0x{vector['checksum_expected']}" in str(caught.value)


@pytest.mark.parametrize("vector", BAD_CHECKSUM, ids=_id)
def test_wrong_checksum_is_the_only_mistake_in_those_frames(vector: dict[str, Any]) -> None:
    raw = bytearray(_raw(vector))
    raw[-2] = int(vector["checksum_expected"], 16)

    frame = decode_frame(bytes(raw))

    assert frame.address == vector["address"]
    assert frame.data.hex().upper() == vector["data_minus33"].upper()
    if vector["direction"] == "response":
        reply = decode_reply(frame)
        assert isinstance(reply, ReadReply)
        assert reply.value == Decimal(str(vector["value"]))
        assert reply.unit == vector["unit"]
    else:
        assert encode_frame(build_read(vector["address"], vector["di"])) == bytes(raw)


def test_1997_read_with_2007_control_code_is_not_a_1997_read() -> None:
    vector = _one("control 0x11 with a 2-byte DI")
    frame = decode_frame(_raw(vector))  # the checksum is fine: the mistake is the control

    with pytest.raises(FrameError, match=r"control 0x11 .* not a DL/T645-1997 request.*0x01"):
        decode_request(frame, Version.V1997)
    with pytest.raises(FrameError, match=r"expected 4 data bytes \(a 4-byte DI\)"):
        decode_request(frame, Version.V2007)
    proper = build_read(vector["address"], vector["di"], Version.V1997)
    assert proper.control == 0x01
    assert proper.data == frame.data


def test_broadcast_time_without_data_is_malformed_though_its_checksum_is_fine() -> None:
    vector = _one("broadcast time with L=0")
    frame = decode_frame(_raw(vector))
    assert (frame.address, frame.control, frame.data) == (BROADCAST, 0x08, b"")

    with pytest.raises(FrameError, match=r"expected 6 data bytes \(ss mm hh DD MM YY\)") as caught:
        decode_request(frame)
    assert caught.value.offset == 10
    assert len(build_broadcast_time(datetime(2024, 1, 1)).data) == 6


def test_log_mis_read_value_is_decoded_from_the_bytes() -> None:
    vector = _one("the log text says 0.54 kWh")

    reply = decode_reply(decode_frame(_raw(vector)), Version.V1997)

    assert isinstance(reply, ReadReply)
    assert reply.value == Decimal("0.36")
    assert reply.value != Decimal("0.54")


def test_address_is_reported_in_nameplate_order_not_wire_order() -> None:
    vector = _one("test asserts address string '140100318221' (wire order)")

    frame = decode_frame(_raw(vector))

    assert frame.address == "218231000114"
    assert frame.address != vector["address_wire"]


def test_device_id_of_dlt645go_capture_is_the_nameplate_address() -> None:
    vector = _one("test asserts DeviceID '020247020276'")

    assert decode_frame(_raw(vector)).address == "020247020276"
