"""The case file: malformed files are refused with the item named; the canonical form; the
``apportion`` command."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from cloud.apportion.case.loading import case_from_data, load_case, parse_case
from cloud.apportion.errors import CaseError
from meterflow.cli.apportion import apportion_command

CASES = Path(__file__).parents[1] / "cases"


def basic() -> dict[str, Any]:
    return yaml.safe_load((CASES / "basic.yaml").read_text())


def refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CaseError, match=message):
        case_from_data(data).to_engine_inputs()


def test_unknown_meter_is_named() -> None:
    data = basic()
    data["tree"][1]["meter"] = "U9"
    refused(data, r"tree: node 'A101' meter 'U9' is not in meters")


def test_negative_area_is_named() -> None:
    data = basic()
    data["units"][2]["area"] = -5
    refused(data, r"units\[2\] \(A103\)\.area: Input should be greater than 0")


def test_tariff_leaving_a_gap_in_the_period_is_named() -> None:
    data = basic()
    data["tariffs"] = [
        {"id": "v1", "kind": "flat", "from": "2026-01-01", "to": "2026-04-11", "price": 0.6},
        {"id": "v2", "kind": "flat", "from": "2026-04-16", "price": 0.6},
    ]
    refused(data, r"tariffs: no tariff version covers 2026-04-11 … 2026-04-15")


def test_tariff_starting_after_the_period_start_is_named() -> None:
    data = basic()
    data["tariffs"][0]["from"] = "2026-04-03"
    refused(data, r"tariffs: no tariff version covers 2026-04-01 … 2026-04-02")


def test_tariff_ending_before_the_period_end_is_named() -> None:
    data = basic()
    data["tariffs"][0]["to"] = "2026-04-30"
    refused(data, r"tariffs: no tariff version covers 2026-04-30 … 2026-04-30")


def test_readings_of_a_meter_outside_the_tree_are_named() -> None:
    data = basic()
    data["readings"]["U9"] = {"2026-04-01": 1.0, "2026-05-01": 2.0}
    refused(data, r"readings: meter 'U9' is not in the tree")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["readings"]["U1"].update({"2026-04-10T14:00:00+08:00": 600.0}),
            r"meter 'U1' reading at 2026-04-10T14:00:00\+08:00 is not at local midnight",
        ),
        (
            lambda d: d["readings"]["U1"].update({"2026-05-02": 900.0}),
            r"meter 'U1' reading on 2026-05-02 is outside",
        ),
        (
            lambda d: d["occupancy"]["A101"].append({"tenant": "X", "from": "2026-04-10"}),
            r"occupancy: 'A101' tenants 'ACME' and 'X' overlap from 2026-04-10",
        ),
        (lambda d: d["units"].append({"id": "A101", "area": 5}), r"units: id 'A101' appears twice"),
        (
            lambda d: d["bill"]["amounts"].update({"total": 720.005}),
            r"bill: amount total: 720.005 CNY has fractions of a cent",
        ),
        (lambda d: d["meters"].append({"id": "X9"}), r"meters: meter 'X9' is not in the tree"),
        (
            lambda d: d["tree"][0]["rule"].update({"bassis": "area"}),
            r"tree\[0\] \(MAIN\)\.rule\.bassis: Extra inputs are not permitted",
        ),
        (
            lambda d: d["tree"][4]["rule"].update(
                {"basis": "formula", "formula": {"driver": "t_max"}}
            ),
            r"node 'LIFT' rule: a mandatory common area is passed on in full",
        ),
        (
            lambda d: d["tree"][1].update({"parent": "A102"}),
            r"node 'A101' hangs under 'A102', a unit node",
        ),
        (
            lambda d: d["readings"]["U1"].update({"2026-04-15": {"T1": 1.0}}),
            r"meter 'U1' on 2026-04-15: registers \['T1'\], expected \['total'\]",
        ),
    ],
)
def test_other_malformed_items_are_named(change, message: str) -> None:  # type: ignore[no-untyped-def]
    data = basic()
    change(data)
    refused(data, message)


def test_formula_driver_must_cover_every_day() -> None:
    data = yaml.safe_load((CASES / "formula.yaml").read_text())
    del data["drivers"]["t_max"][next(iter(data["drivers"]["t_max"]))]
    refused(data, r"drivers: 't_max' has no value for 2026-07-01")


def test_coefficient_key_needs_every_unit() -> None:
    data = yaml.safe_load((CASES / "coefficients.yaml").read_text())
    del data["tree"][0]["rule"]["coefficients"]["K4"]
    refused(data, r"basis 'coefficient' has no coefficient for 'K4'")


def test_yaml_decimals_stay_exact() -> None:
    case = parse_case((CASES / "basic.yaml").read_text())
    assert case.bill.amounts["total"] == Decimal("720.00")
    assert case.readings["U1"][next(iter(case.readings["U1"]))].values["total"] == Decimal("500.00")


def test_canonical_json_is_stable_through_a_round_trip() -> None:
    case = load_case(CASES / "two_part.yaml")
    again = case_from_data(json.loads(case.canonical_json()))
    assert again.canonical_json() == case.canonical_json()
    assert again.input_hash() == case.input_hash()


def test_any_input_change_changes_the_hash() -> None:
    data = basic()
    before = case_from_data(data).input_hash()
    data["readings"]["U1"][next(iter(data["readings"]["U1"]))] = 500.01
    assert case_from_data(data).input_hash() != before


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("apportion")(apportion_command)
    return app


def test_command_prints_the_statement_lines_and_totals() -> None:
    result = CliRunner().invoke(_cli(), [str(CASES / "basic.yaml")])
    assert result.exit_code == 0, result.output
    assert "total tenant ACME: 257.40 CNY" in result.output
    assert "total landlord: 258.60 CNY" in result.output
    assert "LIFT 350.000 kWh × 1800 ÷ 6000 m²·d (area key) = 105.000 kWh" in result.output


def test_command_json_lines_sum_to_the_bill() -> None:
    result = CliRunner().invoke(_cli(), [str(CASES / "tou.yaml"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert sum(line["cents"] for line in doc["lines"]) == doc["bill_cents"] == 62000
    assert doc["totals"] == {"TA": 25973, "TB": 36027}


def test_command_refuses_a_malformed_case_and_computes_nothing(tmp_path: Path) -> None:
    data = basic()
    data["readings"]["U9"] = {"2026-04-01": 1.0}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(_cli(), [str(path)])
    assert result.exit_code == 2
    assert "readings: meter 'U9' is not in the tree" in result.output
    assert "total" not in result.output


def test_command_shows_a_held_run() -> None:
    result = CliRunner().invoke(_cli(), [str(CASES / "negative_residual.yaml")])
    assert result.exit_code == 0
    assert "HOLD negative_residual node MAIN" in result.output


# ----------------------------------------------------------------------------- hostile files


def _basic_text() -> str:
    return (CASES / "basic.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("{total: 720.00}", "{total: 720.00, total: 7200.00}", r"key 'total' appears twice"),
        (
            "U1: {2026-04-01: 500.00,",
            "U1: {2026-04-01: 500.00, 2026-04-01: 1.00,",
            r"appears twice in one mapping",
        ),
    ],
)
def test_a_key_given_twice_is_refused_not_overwritten(old: str, new: str, message: str) -> None:
    text = _basic_text()
    assert old in text
    with pytest.raises(CaseError, match=message):
        parse_case(text.replace(old, new), "case.yaml")


def test_a_second_section_of_the_same_name_is_refused_with_both_lines() -> None:
    text = _basic_text() + "\nbill:\n  invoice: X\n"
    with pytest.raises(CaseError, match=r"line \d+: key 'bill' appears twice .*first on line \d+"):
        parse_case(text, "case.yaml")


def test_deep_nesting_is_refused_quickly_without_a_recursion_error() -> None:
    for text in ("a: " + "[" * 500 + "]" * 500, "".join("  " * i + f"k{i}:\n" for i in range(500))):
        assert len(text) < 300_000
        with pytest.raises(CaseError, match="nested deeper than 32 levels"):
            parse_case(text, "deep.yaml")


def test_aliases_are_refused_and_the_error_stays_short() -> None:
    lines = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    text = "\n".join(lines) + "\n" + "# padding\n" * 10_000
    assert len(text) > 100_000
    with pytest.raises(CaseError, match=r"YAML aliases \(\*a0\) are not accepted") as caught:
        parse_case(text, "bomb.yaml")
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("{total: 720.00}", "{total: 1e17}", "bill.amounts.total"),
        ("{total: 720.00}", "{total: 1.0e+17}", "line 39"),
        ("area: 60,", "area: 1e400,", r"units\[0\] \(A101\).area"),
        ("area: 60,", "area: 1.0e+400,", "line"),
        ("{total: 720.00}", "{total: .inf}", "line 39"),
        ("{total: 720.00}", "{total: " + "9" * 50_000 + "}", "a number of 50000 characters"),
    ],
)
def test_numbers_out_of_range_are_refused_naming_the_item(old: str, new: str, where: str) -> None:
    text = _basic_text()
    assert old in text
    with pytest.raises(CaseError, match=where) as caught:
        parse_case(text.replace(old, new), "case.yaml")
    assert len(str(caught.value)) < 1100


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    from cloud.apportion.case.loading import MAX_CASE_BYTES

    path = tmp_path / "big.yaml"
    path.write_text(_basic_text() + "#" * MAX_CASE_BYTES, encoding="utf-8")
    with pytest.raises(CaseError, match=f"at most {MAX_CASE_BYTES} bytes"):
        load_case(path)


def test_command_answers_a_hostile_file_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 500 + "]" * 500, encoding="utf-8")
    result = CliRunner().invoke(_cli(), [str(path)])
    assert result.exit_code == 2
    assert "nested deeper than 32 levels" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
