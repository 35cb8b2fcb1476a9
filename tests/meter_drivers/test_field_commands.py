"""The field-engineer commands, in their exact forms, through the real `meterflow` app."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from meterflow.cli import app
from simulators.dlt645_meter import Dlt645Line, SimulatedMeter, serve_in_thread
from simulators.load import LoadModel, SimClock
from tests.meter_drivers.test_dlt645_vectors import _load_vectors

runner = CliRunner()
VECTORS = _load_vectors()
VALID_READ_REPLIES = [
    v for v in VECTORS if v["valid"] and v["direction"] == "response" and v["value"] is not None
]
VALID_REQUESTS = [
    v
    for v in VECTORS
    if v["valid"] and v["direction"] == "request" and v["control"] in ("0x11", "0x01")
]


def meterflow(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("vector", VALID_READ_REPLIES, ids=lambda v: v["hex"][:40])
def test_frame_decode_json_gives_value_unit_address_and_di(vector):
    out = meterflow("edge", "frame", "decode", vector["hex"], "--json")
    assert out.exit_code == 0, out.output
    decoded = json.loads(out.output)
    assert decoded["version"] == vector["version"]
    assert decoded["address"] == vector["address"]
    assert decoded["control"] == vector["control"].upper().replace("0X", "0x")
    assert decoded["di"] == (vector["di"].upper() if vector["di"] else None)
    assert (decoded["value"], decoded["unit"]) == (vector["value"], vector["unit"])


@pytest.mark.parametrize("vector", VALID_REQUESTS, ids=lambda v: v["hex"][:40])
def test_frame_build_read_rebuilds_published_requests(vector):
    out = meterflow(
        "edge",
        "frame",
        "build",
        "read",
        "--address",
        vector["address"],
        "--di",
        vector["di"],
        "--version",
        vector["version"],
        "--no-preamble",
    )
    assert out.exit_code == 0, out.output
    published = vector["hex"].upper().split()
    assert out.output.split() == published[published.index("68") :]


def test_frame_build_read_adds_the_preamble_by_default():
    out = meterflow(
        "edge", "frame", "build", "read", "--address", "000000000161", "--di", "00010000"
    )
    assert out.output.strip() == "FE FE FE FE 68 61 01 00 00 00 00 68 11 04 33 33 34 33 14 16"


def test_error_reply_is_decoded_with_named_bits():
    out = meterflow(
        "edge", "frame", "decode", "FE FE 68 61 01 00 00 00 00 68 D1 01 35 39 16", "--json"
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["error"] == ["no_such_data"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("68 61 01 00 00 00 00 68 91 08 33 33 34 33 59 33 33 33 8B 16", "checksum"),
        ("68 61 01 00 zz", "expected hex digits"),
        ("68 61 01", "frame"),
    ],
)
def test_bad_frames_get_a_clear_error(text, message):
    out = meterflow("edge", "frame", "decode", text)
    assert out.exit_code == 2
    assert message in out.output


@pytest.fixture()
def live_line():
    clock = SimClock(datetime(2026, 6, 1, tzinfo=UTC))
    line = Dlt645Line(
        [SimulatedMeter(f"{n:012d}", LoadModel(3.0, seed=n), clock=clock) for n in (21, 22, 57)]
    )
    port, stop = serve_in_thread(line)
    yield line, clock, f"127.0.0.1:{port}"
    stop()


def test_read_a_live_meter_over_tcp(live_line):
    line, clock, where = live_line
    out = meterflow(
        "edge",
        "read",
        "--protocol",
        "dlt645",
        "--tcp",
        where,
        "--address",
        "22",
        "--di",
        "00010000",
        "--json",
    )
    assert out.exit_code == 0, out.output
    values = json.loads(out.output)["values"]
    assert values == [
        {
            "di": "00010000",
            "quantity": "energy_import",
            "unit": "kWh",
            "value": str(line.meters[1].load.energy_import_kwh(clock.now())),
        }
    ]


def test_read_of_an_absent_meter_fails_clearly(live_line):
    _, _, where = live_line
    out = meterflow(
        "edge",
        "read",
        "--protocol",
        "dlt645",
        "--tcp",
        where,
        "--address",
        "99",
        "--di",
        "00010000",
        "--timeout",
        "0.1",
    )
    assert out.exit_code == 2 and "no reply" in out.output


def test_scan_lists_the_meters_on_the_line(live_line):
    _, _, where = live_line
    out = meterflow(
        "edge", "scan", "--protocol", "dlt645", "--tcp", where, "--timeout", "0.05", "--json"
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.strip().splitlines()[-1])["found"] == [
        "000000000021",
        "000000000022",
        "000000000057",
    ]
