"""`meterflow edge check` refuses what `edge run` cannot run, naming file:line and field for
each problem and listing them all; `edge run` refuses the same files with the same lines.

Each case edits a valid site file; the line that the error must name carries ``# here``
(the test finds it by that mark, not by the code under test).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterflow.cli import app

BASE = """site = "s1"
gateway = "gw1"
timezone = "Asia/Shanghai"
metrics_port = 0

[[groups]]
name = "billing"
interval_s = 900
quantities = ["energy_import", "energy_import_t1"]

[[groups]]
name = "water"
interval_s = 3600
quantities = ["water_volume"]

[[lines]]
name = "rs485-1"
tcp = "192.168.1.50:8899"
baud = 2400

[[lines.meters]]
id = "MAIN"
address = "000000000001"
role = "main"
groups = ["billing"]

[[lines.meters]]
id = "U101"
address = "000000000101"
parent = "MAIN"
groups = ["billing"]

[[lines.meters]]
id = "U102"
address = "000000000102"
parent = "MAIN"
groups = ["billing"]

[[lines]]
name = "modbus-1"
protocol = "modbus"
serial = "/dev/ttyUSB0"
baud = 9600
parity = "N"

[[lines.meters]]
id = "E1"
address = "1"
profile = "sdm630"
groups = ["billing"]

[[lines.meters]]
id = "W1"
address = 2
profile = "tuf2000"
groups = ["water"]
"""

#: (case, text replaced, replacement with the line to be named marked ``# here``,
#:  field path, part of the message)
CASES = [
    ("baud 0", "baud = 2400", "baud = 0  # here", "lines[0].baud", "not a standard rate"),
    ("baud negative", "baud = 9600", "baud = -9600  # here", "lines[1].baud", "expected one of"),
    ("baud odd", "baud = 2400", "baud = 2500  # here", "lines[0].baud", "1200, 2400, 4800"),
    (
        "address letters",
        'address = "000000000101"',
        'address = "ZZZZZZZZZZZZ"  # here',
        "lines[0].meters[1].address",
        "expected the 12 decimal digits",
    ),
    (
        "address short",
        'address = "000000000101"',
        'address = "12"  # here',
        "lines[0].meters[1].address",
        "expected the 12 decimal digits",
    ),
    (
        "address as a number",
        'address = "000000000101"',
        "address = 101  # here",
        "lines[0].meters[1].address",
        "expected the 12 decimal digits",
    ),
    (
        "address wildcard",
        'address = "000000000102"',
        'address = "AAAAAAAA0102"  # here',
        "lines[0].meters[2].address",
        "wildcard",
    ),
    (
        "address broadcast",
        'address = "000000000102"',
        'address = "999999999999"  # here',
        "lines[0].meters[2].address",
        "broadcast address",
    ),
    (
        "two meters on one address",
        'address = "000000000102"',
        'address = "000000000101"  # here',
        "lines[0].meters[2].address",
        "one meter per address per line",
    ),
    (
        "two Modbus meters on one unit",
        "address = 2",
        'address = "01"  # here',
        "lines[1].meters[1].address",
        "one meter per address per line",
    ),
    (
        "port too high",
        'tcp = "192.168.1.50:8899"',
        'tcp = "192.168.1.50:99999"  # here',
        "lines[0].tcp",
        "port 99999 is outside 1..65535",
    ),
    (
        "port zero",
        'tcp = "192.168.1.50:8899"',
        'tcp = "192.168.1.50:0"  # here',
        "lines[0].tcp",
        "outside 1..65535",
    ),
    (
        "no port",
        'tcp = "192.168.1.50:8899"',
        'tcp = "192.168.1.50"  # here',
        "lines[0].tcp",
        "expected host:port",
    ),
    (
        "timezone",
        'timezone = "Asia/Shanghai"',
        'timezone = "Mars/Olympus"  # here',
        "timezone",
        "not a known time zone",
    ),
    (
        "unknown profile",
        'profile = "sdm630"',
        'profile = "sdm999"  # here',
        "lines[1].meters[0].profile",
        "no shipped profile 'sdm999'",
    ),
    (
        "no profile",
        '[[lines.meters]]\nid = "E1"\naddress = "1"\nprofile = "sdm630"',
        '[[lines.meters]]  # here\nid = "E1"\naddress = "1"',
        "lines[1].meters[0].profile",
        "a Modbus meter needs a profile",
    ),
    (
        "unit id 999",
        'address = "1"',
        'address = "999"  # here',
        "lines[1].meters[0].address",
        "expected a Modbus unit id 1..247",
    ),
    (
        "unit id 0",
        'address = "1"',
        "address = 0  # here",
        "lines[1].meters[0].address",
        "expected a Modbus unit id 1..247",
    ),
    (
        "unknown quantity",
        'quantities = ["energy_import", "energy_import_t1"]',
        'quantities = ["energy_import", "energy_imprt_t1"]  # here',
        "groups[0].quantities[1]",
        "unknown quantity 'energy_imprt_t1'",
    ),
    (
        "quantity no meter of the group has",
        'quantities = ["water_volume"]',
        'quantities = ["water_volume", "voltage_a"]  # here',
        "groups[1].quantities[1]",
        "no meter of group 'water' can read 'voltage_a' (not in profile tuf2000)",
    ),
    (
        "meter that would never be read",
        'groups = ["water"]',
        'groups = ["billing"]  # here',
        "lines[1].meters[1].groups",
        "would never be read",
    ),
    (
        "unknown group",
        'parent = "MAIN"\ngroups = ["billing"]\n\n[[lines]]',
        'parent = "MAIN"\ngroups = ["billing", "nigth"]  # here\n\n[[lines]]',
        "lines[0].meters[2].groups",
        "no group named 'nigth'",
    ),
    (
        "meter id twice",
        'id = "U102"',
        'id = "U101"  # here',
        "lines[0].meters[2].id",
        "meter id 'U101' is already used at lines[0].meters[1]",
    ),
    (
        "parent unknown",
        'parent = "MAIN"\ngroups = ["billing"]\n\n[[lines]]',
        'parent = "MIAN"  # here\ngroups = ["billing"]\n\n[[lines]]',
        "lines[0].meters[2].parent",
        "parent 'MIAN' is not a meter here",
    ),
    (
        "parent loop",
        'role = "main"',
        'role = "main"\nparent = "U101"  # here',
        "lines[0].meters[0].parent",
        "the parent chain loops: MAIN → U101 → MAIN",
    ),
    (
        "two endpoints",
        '[[lines]]\nname = "rs485-1"\ntcp = "192.168.1.50:8899"',
        '[[lines]]  # here\nname = "rs485-1"\ntcp = "192.168.1.50:8899"\nserial = "/dev/ttyS1"',
        "lines[0]",
        "give exactly one of tcp",
    ),
    (
        "line name twice",
        'name = "modbus-1"',
        'name = "rs485-1"  # here',
        "lines[1].name",
        "line name 'rs485-1' is already used by lines[0]",
    ),
    (
        "profile on a DL/T645 meter",
        'role = "main"',
        'role = "main"\nprofile = "sdm630"  # here',
        "lines[0].meters[0].profile",
        "a profile is for Modbus meters",
    ),
]


def marked_line(text: str) -> int:
    return next(n for n, line in enumerate(text.split("\n"), start=1) if "# here" in line)


def cli(args: list[str], tmp_path: Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, args, env={"MF_DATA_DIR": str(tmp_path / "data")})


def test_the_base_file_passes(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text(BASE)
    out = cli(["edge", "check", str(path)], tmp_path)
    assert out.exit_code == 0, out.output
    assert "2 line(s), 5 meter(s), 2 group(s)" in out.stdout


@pytest.mark.parametrize(
    ("case", "old", "new", "field", "message"), CASES, ids=[c[0] for c in CASES]
)
def test_check_and_run_refuse_with_file_line_and_field(tmp_path, case, old, new, field, message):
    assert BASE.count(old) >= 1
    text = BASE.replace(old, new, 1)
    path = tmp_path / "site.toml"
    path.write_text(text)
    expected = f"error: {path}:{marked_line(text)}: {field}: "
    check = cli(["edge", "check", str(path)], tmp_path)
    assert check.exit_code == 2, check.output
    errors = check.stderr.strip().split("\n")
    assert len(errors) == 1, errors  # the one thing changed, and nothing else
    assert errors[0].startswith(expected) and message in errors[0], errors
    assert check.stdout == ""
    run = cli(["edge", "run", str(path)], tmp_path)
    assert (run.exit_code, run.stderr) == (2, check.stderr)


ALL_AT_ONCE = [
    ('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"'),
    ('"energy_import_t1"]', '"energy_imprt_t1"]'),
    ('tcp = "192.168.1.50:8899"', 'tcp = "192.168.1.50:99999"'),
    ("baud = 2400", "baud = 0"),
    ('address = "000000000001"', 'address = "ZZZZZZZZZZZZ"'),
    ('address = "000000000101"', 'address = "12"'),
    (
        'groups = ["billing"]\n\n[[lines]]',
        'groups = ["billing"]\n\n[[lines.meters]]\nid = "U103"\naddress = "000000000102"\n'
        'parent = "MAIN"\ngroups = ["billing"]\n\n[[lines]]',
    ),
    ('profile = "sdm630"', 'profile = "nosuch"'),
    ("address = 2", 'address = "999"'),
]


def test_every_problem_is_listed_in_file_order(tmp_path):
    """The issue's list in one file: baud 0, addresses ZZZZZZZZZZZZ and 12, port 99999,
    Mars/Olympus, an unknown profile, unit 999, an unknown quantity, two meters on one
    address: nine errors, each at its own line."""
    text = BASE
    for old, new in ALL_AT_ONCE:
        assert old in text
        text = text.replace(old, new, 1)
    lines = text.split("\n")
    path = tmp_path / "site.toml"
    path.write_text(text)
    out = cli(["edge", "check", str(path)], tmp_path)
    assert out.exit_code == 2
    errors = out.stderr.strip().split("\n")
    prefix = f"error: {path}:"
    assert all(e.startswith(prefix) for e in errors), errors
    located = [
        (int(e[len(prefix) :].split(":")[0]), e[len(prefix) :].split(": ")[1]) for e in errors
    ]
    assert [n for n, _ in located] == sorted(n for n, _ in located)
    assert [f for _, f in located] == [
        "timezone",
        "groups[0].quantities[1]",
        "lines[0].tcp",
        "lines[0].baud",
        "lines[0].meters[0].address",
        "lines[0].meters[1].address",
        "lines[0].meters[3].address",  # 000000000102 a second time
        "lines[1].meters[0].profile",
        "lines[1].meters[1].address",
    ]
    for number, field in located:
        key = field.rsplit(".", 1)[-1].split("[")[0]
        assert lines[number - 1].startswith(key), (number, field, lines[number - 1])
    run = cli(["edge", "run", str(path)], tmp_path)
    assert (run.exit_code, run.stderr) == (2, out.stderr)


def test_not_utf8_nor_toml_is_refused_with_its_line_and_no_traceback(tmp_path):
    path = tmp_path / "site.toml"
    path.write_bytes(BASE.replace('"gw1"', '"gw\xe9"').encode("latin-1"))  # é as one byte
    for command in ("check", "run"):
        proc = subprocess.run(
            [sys.executable, "-m", "meterflow", "edge", command, str(path)],
            capture_output=True,
            text=True,
            env={"MF_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (
            f"error: {path}:2: not UTF-8 text (byte 0xe9 at column 14); save the file as UTF-8"
        )
    path.write_text(BASE.replace("baud = 2400", "baud = 2400 bit/s"))
    out = cli(["edge", "check", str(path)], tmp_path)
    assert out.exit_code == 2
    assert out.stderr.startswith(f"error: {path}:19: not valid TOML: ")
    # 5,000 nested arrays (10 KB): Python's TOML parser gives up with a RecursionError
    path.write_text(BASE + "\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    for command in ("check", "run"):
        out = cli(["edge", command, str(path)], tmp_path)
        assert out.exit_code == 2, out.output
        assert out.stderr.strip() == f"error: {path}: not valid TOML: nested too deeply"


def test_a_byte_order_mark_and_a_numeric_unit_id_are_accepted(tmp_path):
    path = tmp_path / "site.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    out = cli(["edge", "check", str(path)], tmp_path)
    assert out.exit_code == 0, out.output


def test_without_groups_the_default_group_must_be_readable(tmp_path):
    text = BASE[BASE.index('[[lines]]\nname = "modbus-1"') :]
    text = 'site = "s1"\ngateway = "gw1"\n\n' + text.replace('groups = ["billing"]\n', "")
    text = text.replace('groups = ["water"]\n', "").replace(
        'profile = "sdm630"', 'profile = "tuf2000"'
    )
    path = tmp_path / "site.toml"
    path.write_text(text)
    out = cli(["edge", "check", str(path)], tmp_path)
    assert out.exit_code == 2
    assert out.stderr.strip().split("\n") == [
        f"error: {path}: groups: there is no [[groups]], so the default group reads "
        "'energy_import' every 60 s: no meter of group 'default' can read 'energy_import' "
        "(not in profile tuf2000); add a [[groups]] table"
    ]


def test_run_refuses_a_metrics_port_in_use_in_one_line(tmp_path):
    from edge.keys import GatewayIdentity

    GatewayIdentity.create(tmp_path / "data" / "gateway.key")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "site.toml"
        path.write_text(BASE.replace("metrics_port = 0", f"metrics_port = {port}"))
        assert cli(["edge", "check", str(path)], tmp_path).exit_code == 0
        run = CliRunner().invoke(
            app,
            ["edge", "run", str(path), "--rounds", "1"],
            env={"MF_DATA_DIR": str(tmp_path / "data"), "MF_MQTT_URL": "mqtt://127.0.0.1:1"},
        )
    assert run.exit_code == 2
    assert run.stderr.strip() == (
        f"error: metrics_port = {port}: cannot listen on 127.0.0.1:{port} (Address already in "
        "use); expected a free port, or 0 for no metrics"
    )


def test_a_configuration_built_in_code_gets_the_same_rules(tmp_path):
    # provisioning and the demo build SiteConfig from data, without a file: same rules, with
    # the field paths in the message.
    import tomllib

    from pydantic import ValidationError

    from edge.config import SiteConfig

    data = tomllib.loads(BASE.replace('address = "000000000101"', 'address = "12"'))
    with pytest.raises(ValidationError, match=r"lines\[0\]\.meters\[1\]\.address: '12': expected"):
        SiteConfig.model_validate(data)
    assert SiteConfig.model_validate(tomllib.loads(BASE)).gateway == "gw1"
