"""Device profiles: the shipped register maps load and cite their manuals; a malformed
profile is refused with an error naming the file and the field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from meter_drivers.modbus import (
    MAX_REGISTERS_PER_READ,
    DataType,
    InvalidValueError,
    ProfileError,
    builtin_profile_paths,
    builtin_profiles,
    load_builtin,
    load_profile,
)


def test_every_shipped_profile_loads_and_cites_its_manual() -> None:
    profiles = builtin_profiles()
    assert {"sdm630", "dtsu666", "adl400", "tuf2000"} <= set(profiles)
    assert len(builtin_profile_paths()) == len(profiles)
    for profile in profiles.values():
        assert profile.manual.title and profile.manual.version and profile.manual.register_table
        assert profile.addressing, f"{profile.name}: say how the manual numbers registers"
        assert 1 <= profile.max_registers <= MAX_REGISTERS_PER_READ
        assert 1 <= profile.unit_id <= 247
        assert Path(profile.source).is_file()


def test_shipped_maps_match_the_manuals_well_known_addresses() -> None:
    sdm630 = load_builtin("sdm630")
    assert (sdm630.field("voltage_a").function, sdm630.field("voltage_a").address) == (4, 0)
    assert sdm630.field("energy_import").address == 30073 - 30001 == 0x0048
    assert sdm630.field("energy_import").data_type is DataType.FLOAT32
    dtsu666 = load_builtin("dtsu666")
    assert (dtsu666.field("voltage_a").function, dtsu666.field("voltage_a").address) == (3, 0x2006)
    assert dtsu666.field("voltage_a").scale == Decimal("0.1")
    assert dtsu666.field("energy_import").address == 0x401E
    adl400 = load_builtin("adl400")
    assert [adl400.field(f"energy_import_t{k}").address for k in (1, 2, 3, 4)] == [
        0x0C,
        0x0E,
        0x10,
        0x12,
    ]
    water = load_builtin("tuf2000")
    assert water.field("water_volume").unit == "m³"
    assert water.field("flow_rate").order == "CDAB"


def test_byte_order_override_reaches_every_field_at_its_width() -> None:
    swapped = load_builtin("adl400").with_byte_order("CDAB")
    assert swapped.byte_order == "CDAB"
    assert swapped.field("energy_import").order == "CDAB"
    assert swapped.field("voltage_a").order == "AB"  # one register: no words to swap
    little = load_builtin("adl400").with_byte_order("little")
    assert little.field("voltage_a").order == "BA"


def test_unknown_quantity_names_the_known_ones() -> None:
    with pytest.raises(InvalidValueError, match="no quantity 'voltage_z'; has voltage_a"):
        load_builtin("sdm630").field("voltage_z")


# -- malformed profiles -------------------------------------------------------------------------

HEADER = """\
name = "test"
maker = "Test"
model = "T-1"
max_registers = {max_registers}
max_gap = 2

[manual]
title = "Test manual"
version = "1"
register_table = "table 1"
"""


def write_profile(
    tmp_path: Path, fields: str, max_registers: int = 60, header: str = HEADER
) -> Path:
    path = tmp_path / "broken.toml"
    path.write_text(header.format(max_registers=max_registers) + fields, encoding="utf-8")
    return path


def field_toml(quantity: str, address: int | str, type_: str = "float32", **extra: str) -> str:
    lines = [
        "[[fields]]",
        f'quantity = "{quantity}"',
        "function = 3",
        f"address = {address}",
        f'type = "{type_}"',
        'unit = "V"',
        *(f"{key} = {value}" for key, value in extra.items()),
    ]
    return "\n".join(lines) + "\n\n"


@pytest.mark.parametrize(
    ("fields", "max_registers", "where", "what"),
    [
        (
            field_toml("a", 0) + field_toml("b", 2, "float16"),
            60,
            "fields[1] (b).type",
            "unknown type 'float16'",
        ),
        (
            field_toml("a", 0x10) + field_toml("b", 0x11),
            60,
            "fields[1] (b)",
            "overlap fields[0] (a)",
        ),
        (field_toml("a", 70000), 60, "fields[0] (a).address", "70000 out of range 0..65535"),
        (field_toml("a", "0xFFFF"), 60, "fields[0] (a).address", "runs past 0xFFFF"),
        (
            field_toml("a", 0, "uint64"),
            2,
            "fields[0] (a).type",
            "needs 4 registers, more than max_registers 2",
        ),
        (field_toml("a", 0, order='"ACBD"'), 60, "fields[0] (a).order", "byte order 'ACBD'"),
        (field_toml("a", 0, adress="4"), 60, "fields[0] (a)", "unknown key(s) adress"),
        (field_toml("a", 0, scale="0.1"), 60, "fields[0] (a).scale", "decimal string"),
        (field_toml("a", 0, scale='"0"'), 60, "fields[0] (a).scale", "non-zero"),
        (
            field_toml("a", 0) + field_toml("a", 4),
            60,
            "fields[1] (a)",
            "already defined by fields[0]",
        ),
        (
            field_toml("a", 0).replace("function = 3", "function = 5"),
            60,
            "fields[0] (a).function",
            "5 out of range 3..4",
        ),
        (
            field_toml("a", 0).replace("function = 3", "function = 4") + "writable = true\n",
            60,
            "fields[0] (a).writable",
            "only holding registers",
        ),
        (field_toml("a", 0), 126, "max_registers", "126 out of range 1..125"),
        ("", 60, "fields", "missing key(s) fields"),
    ],
)
def test_malformed_profile_error_names_file_and_field(
    tmp_path: Path, fields: str, max_registers: int, where: str, what: str
) -> None:
    path = write_profile(tmp_path, fields, max_registers)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert str(path) in message
    assert where in message
    assert what in message
    assert caught.value.path == str(path)


def test_a_file_that_is_not_toml_or_lacks_its_manual_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.toml"
    path.write_text("name = [unclosed\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"garbage\.toml: not valid TOML"):
        load_profile(path)
    no_manual = write_profile(tmp_path, field_toml("a", 0), header=HEADER.split("[manual]")[0])
    with pytest.raises(ProfileError, match=r"missing key\(s\) manual"):
        load_profile(no_manual)
    no_fields = write_profile(tmp_path, "", header="fields = []\n" + HEADER)
    with pytest.raises(ProfileError, match="fields: expected at least one"):
        load_profile(no_fields)
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "absent.toml")
