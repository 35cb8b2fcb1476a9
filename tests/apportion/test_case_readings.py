"""A case's readings checked in one pass (cloud/apportion/case/readings.py, decision 0027):
the input hashes of the published cases are those computed before the change, the stored
form built without a JSON round trip equals the one rerun() reads back, and a bad reading
is refused naming it."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cloud.apportion.case.canonical import decimal_text, plain_json
from cloud.apportion.case.document import Case
from cloud.apportion.case.loading import case_from_data, load_case
from cloud.apportion.case.readings import MeterReading, ReadingTable, register_texts
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


# ---------------------------------------------------------------- readings as arrays (0036)


def _as_table(case: Case) -> ReadingTable | None:
    """``case``'s readings as a :class:`ReadingTable` (None when a reading is not one a
    table holds: another quality, a register missing, a value not within 6 decimals)."""
    registers = list(case.registers)
    meters = sorted(m for m in case.readings if case.readings[m])
    counts, days, values, estimated = [], [], [], []
    for m in meters:
        series = sorted((case.reading_day(m, at), r) for at, r in case.readings[m].items())
        counts.append(len(series))
        for day, r in series:
            if (r.quality, r.method) not in (("good", None), ("estimated", "interpolated")):
                return None
            if set(r.values) != set(registers):
                return None
            row = [float(r.values[k]) for k in registers]
            if register_texts(np.array(row)) != [decimal_text(r.values[k]) for k in registers]:
                return None
            days.append(day.toordinal())
            values.append(row)
            estimated.append(r.quality == "estimated")
    return ReadingTable.from_values(
        meters,
        registers,
        np.array(counts),
        np.array(days, dtype=np.int64),
        np.array(values, dtype=np.float64).reshape(-1, len(registers)),
        np.array(estimated, dtype=bool),
    )


@pytest.mark.parametrize("name", sorted(HASHES))
def test_a_case_with_its_readings_as_arrays_hashes_and_computes_alike(name: str) -> None:
    """Canonical bytes (hence the input hash), the stored form, the engine's readings and
    the statements are those of the same case with its readings as records."""
    case = load_case(CASES / f"{name}.yaml")
    table = _as_table(case)
    if table is None:
        pytest.skip("a reading a table does not hold (quality, registers or decimals)")
    data = yaml.safe_load((CASES / f"{name}.yaml").read_text())
    arrays = case_from_data({**data, "readings": table}, "arrays")
    assert isinstance(arrays.readings, ReadingTable)
    assert arrays.canonical_json() == case.canonical_json()
    assert arrays.input_hash() == HASHES[name]
    plain, stored = case.canonical_and_stored()
    canonical, stored_arrays = arrays.canonical_bytes_and_stored()
    assert canonical == plain_json(plain) == plain_json(arrays.canonical())
    assert stored_arrays.canonical_json() == stored.canonical_json()
    mine = stored_arrays.to_engine_inputs()
    theirs = stored.to_engine_inputs()
    np.testing.assert_array_equal(mine.meters.registers, theirs.meters.registers)
    try:
        result = apportion(theirs)
    except ApportionError as exc:
        with pytest.raises(type(exc)):
            apportion(mine)
        return
    assert build_statements(stored_arrays, apportion(mine), run_id="r") == build_statements(
        stored, result, run_id="r"
    )


def test_most_published_cases_convert_to_arrays() -> None:
    """The test above is not skipped for most of the cases."""
    converted = [n for n in HASHES if _as_table(load_case(CASES / f"{n}.yaml")) is not None]
    assert len(converted) >= len(HASHES) // 2, converted


def test_register_texts_are_the_per_value_formatting() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate(
        [
            rng.uniform(0, 1e6, 2000),
            rng.uniform(0, 1, 500).round(3),
            rng.integers(0, 10**9, 500).astype(np.float64),
            [0.0, 1e-7, 5e-7, 0.1 + 0.2, 100.0, 10.1, 1.0005, 999999999999999.0, 12345678.125],
        ]
    )
    want = [f"{v:.6f}".rstrip("0").rstrip(".") for v in values.tolist()]
    assert register_texts(values) == want
    assert register_texts(np.zeros(0)) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1.5, r"readings\.M2\.2026-04-02\.total: Input should be greater than or equal to 0"),
        (float("inf"), r"readings\.M2\.2026-04-02\.total: Input should be a finite number"),
        (2e15, r"readings\.M2\.2026-04-02\.total: Input should be less than 10+"),
    ],
)
def test_a_bad_value_in_a_table_is_refused_naming_it(value: float, message: str) -> None:
    values = np.array([[1.0], [2.0], [3.0], [value]])
    days = np.array([date(2026, 4, d).toordinal() for d in (1, 2, 1, 2)])
    with pytest.raises(CaseError, match=message):
        ReadingTable.from_values(
            ["M1", "M2"], ["total"], np.array([2, 2]), days, values, np.zeros(4, dtype=bool)
        )


def test_a_table_reads_like_readings() -> None:
    """-0.0000001 reads 0; a meter's series maps days to readings with decimal values."""
    days = np.array([date(2026, 4, d).toordinal() for d in (1, 3, 1)])
    table = ReadingTable.from_values(
        ["A", "B"],
        ["T1", "T2"],
        np.array([2, 1]),
        days,
        np.array([[1.5, 2.0], [-1e-7, 3.25], [7.0, 8.125]]),
        np.array([False, True, False]),
    )
    assert list(table) == ["A", "B"] and "B" in table and "C" not in table
    series = table["A"]
    assert list(series) == [date(2026, 4, 1), date(2026, 4, 3)]
    assert series[date(2026, 4, 1)] == MeterReading({"T1": Decimal("1.5"), "T2": Decimal("2")})
    assert series[date(2026, 4, 3)] == MeterReading(
        {"T1": Decimal("0"), "T2": Decimal("3.25")}, "estimated", "interpolated"
    )
    assert series.get(date(2026, 4, 2)) is None and len(series) == 2
    assert table.values[1].tolist() == [0.0, 3.25]
    assert json.loads(table.canonical_text()) == {
        "A": {
            "2026-04-01": {"method": None, "quality": "good", "values": {"T1": "1.5", "T2": "2"}},
            "2026-04-03": {
                "method": "interpolated",
                "quality": "estimated",
                "values": {"T1": "0", "T2": "3.25"},
            },
        },
        "B": {
            "2026-04-01": {"method": None, "quality": "good", "values": {"T1": "7", "T2": "8.125"}}
        },
    }
