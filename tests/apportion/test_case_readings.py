"""A case's readings checked in one pass (cloud/apportion/case/readings.py, decision 0027):
the input hashes of the published cases are those computed before the change, the stored
form built without a JSON round trip equals the one rerun() reads back, and a bad reading
is refused naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.apportion.case.canonical import plain_json
from cloud.apportion.case.loading import case_from_data, load_case
from cloud.apportion.engine import apportion
from cloud.apportion.errors import ApportionError, CaseError
from cloud.apportion.statement import build_statements

CASES = Path(__file__).parents[1] / "cases"

#: Input hashes as computed with readings as pydantic records (main at 4904e60).
HASHES = {
    "basic": "24c0bccb9ccbea33573b33e047696eeec94e99c477b95899417fb425e0f712f6",
    "blend": "4a2cc8ddf786dbe9c8bd8fa58eecbef3ff5f3aa673a27cdb8d5e1d04d959f115",
    "coefficients": "beca91aa263195132edbebfa9366a7f17d8b0e93afe510341681756c6b04c8be",
    "decreasing": "783dfd19ef5272d75b295179ec68bc090c2c7446ef1851fbb72ff4a4d30001e2",
    "formula": "35b2ae576b29cd742d0b787da809ee4e522251ef2ce9575ea3610d03e6d4cecb",
    "gaps": "fac0413d8706ec77a456679d9a1fe28209f579cd4ae6b838e37bc6a8ab9ee306",
    "move_in": "343a0f0d2c924971a1e6a5ec2660cf23be786d02ae576c811d8aa4c1bbb1d122",
    "negative_residual": "be7630ae31c99eef1d34348d08574391a256c4767966771b99e7490732604d07",
    "replacement": "2fc8a516fdad71eb7ff5e74c432584c0fa708b46d278113ba7a84352c0326e81",
    "rollover": "345e1761a365c5283c7b7233bb0a37877c20d1b2fc8595ea6f46a9a75e950774",
    "rounding": "bffff663cc9133e6cb1ba6ad9b8179b2ea1b837224562ca3ceda4bcf8a6c3c23",
    "tariff_change": "d6d1cb79a8bedaba3c90a2166c6426c168da78fceff61b3e16904baf51cd694a",
    "tiered": "395576e68772e089b4c7d0b43632a906dfa48153bc3a55e7cbbdca925bb49438",
    "tou": "84fdbde6c5ffa7d8a29b6ea334fb0ceb0ae534ac44e32457c1a904a98b2e94cd",
    "two_part": "21b387f3e0941d0dfe28939bc0370b5888568593539ac12eb0d00faf1338d906",
}


@pytest.mark.parametrize("name", sorted(HASHES))
def test_input_hashes_are_those_of_before(name: str) -> None:
    assert load_case(CASES / f"{name}.yaml").input_hash() == HASHES[name]


@pytest.mark.parametrize("name", sorted(HASHES))
def test_stored_form_equals_what_rerun_reads_back(name: str) -> None:
    case = load_case(CASES / f"{name}.yaml")
    plain, stored = case.canonical_and_stored()
    assert plain_json(plain) == case.canonical_json()
    reread = case_from_data(json.loads(plain_json(plain)), "stored")
    assert stored.canonical_json() == reread.canonical_json()
    try:
        mine = build_statements(stored, apportion(stored.to_engine_inputs()), run_id="r")
    except ApportionError as exc:  # decreasing.yaml: refused by the engine, alike
        with pytest.raises(type(exc)):
            apportion(reread.to_engine_inputs())
        return
    assert mine == build_statements(reread, apportion(reread.to_engine_inputs()), run_id="r")


def test_stored_form_shows_values_as_stored() -> None:
    """A statement of a stored run shows 500 where the case file says 500.00."""
    case = load_case(CASES / "basic.yaml")
    first = next(iter(case.readings["U1"].values()))
    assert str(first.values["total"]) == "500.00"
    _plain, stored = case.canonical_and_stored()
    assert str(next(iter(stored.readings["U1"].values())).values["total"]) == "500"


def _with_reading(value: Any) -> dict[str, Any]:
    data = yaml.safe_load((CASES / "basic.yaml").read_text())
    data["readings"]["U1"]["2026-04-15"] = value
    return data


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            -1,
            r"readings\.U1\.2026-04-15\.total: Input should be greater than or equal to 0, got -1",
        ),
        ("x", r"readings\.U1\.2026-04-15\.total: Input should be a valid decimal, got 'x'"),
        (float("nan"), r"readings\.U1\.2026-04-15\.total: Input should be a finite number"),
        (1e16, r"readings\.U1\.2026-04-15\.total: Input should be less than 10+"),
        (
            {"values": {"total": 1}, "note": "x"},
            r"readings\.U1\.2026-04-15\.note: Extra inputs are not permitted",
        ),
        ({"total": 1, "quality": "q" * 17}, r"\.quality: String should have at most 16"),
        ({"total": 1, "method": "guessed"}, r"\.method: Input should be 'interpolated'"),
        ({"total": -2}, r"readings\.U1\.2026-04-15\.total: Input should be greater than"),
    ],
)
def test_a_bad_reading_is_refused_naming_it(value: Any, message: str) -> None:
    with pytest.raises(CaseError, match=message):
        case_from_data(_with_reading(value), "case")


def test_a_bad_day_or_meter_is_refused_naming_it() -> None:
    data = _with_reading(1)
    data["readings"]["U1"]["April"] = 1
    with pytest.raises(CaseError, match=r"readings\.U1\.'April': Input should be a valid"):
        case_from_data(data)
    data = _with_reading(1)
    data["readings"]["U 1"] = {"2026-04-01": 1}
    with pytest.raises(CaseError, match=r"readings\.'U 1': String should match pattern"):
        case_from_data(data)
