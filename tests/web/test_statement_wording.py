"""The statement's words per language (cloud.statements.wording, decision 0021): every kind of
line gets a Chinese and an English formula with its numbers; registers, prices, readings,
subtotals and the share of the bill; a statement signed in the old form is left as signed."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cloud.apportion.case.loading import load_case
from cloud.apportion.case.schema import MeterReading
from cloud.apportion.engine import apportion
from cloud.apportion.engine_result import Flag
from cloud.apportion.statement import build_statements
from cloud.apportion.statement_facts import edge_reading, line_price, tenant_flags, trim
from cloud.statements.wording import (
    group,
    line_formula,
    percent,
    register_name,
    statement_view,
)

CASES = Path(__file__).parents[1] / "cases"
#: English words that must not be in a Chinese formula
ENGLISH = re.compile(r"\b(key|loss|carried|tenants|of|residual|CNY|price|use|area|days)\b")


def statements(name: str) -> list[dict[str, Any]]:
    case = load_case(CASES / f"{name}.yaml")
    return build_statements(case, apportion(case.to_engine_inputs()), run_id="run-1")


def line(name: str, party: str, component: str, origin: str = "") -> dict[str, Any]:
    doc = next(d for d in statements(name) if d["party"] == party)
    return next(x for x in doc["lines"] if x["component"] == component and x["origin"] == origin)


def test_numbers_are_grouped_and_ratios_are_percentages() -> None:
    assert group("1234.5") == "1,234.5" and group("1234", 2) == "1,234.00"
    assert group(Decimal("1000000.00")) == "1,000,000.00" and group("0.071") == "0.071"
    assert group("—") == "—"
    assert percent("0.071429") == "7.14%" and percent(None) == "—"
    assert trim(0.46875) == "0.46875" and trim(0.6) == "0.60" and trim(12) == "12.00"


def test_tou_registers_have_their_names() -> None:
    assert [register_name(r, "zh-CN") for r in ("T1", "T2", "T3", "T4")] == list("尖峰平谷")
    assert [register_name(r, "en") for r in ("T1", "T2", "T3", "T4")] == [
        "critical peak",
        "peak",
        "flat",
        "valley",
    ]
    assert register_name("total", "zh-CN") == "总" and register_name("X9", "en") == "X9"


def test_area_key_in_chinese_and_english_with_the_numbers() -> None:
    lift = line("basic", "ACME", "common", "LIFT")
    assert line_formula(lift, "zh-CN", {"LIFT": "电梯"}) == [
        "本户面积·天 = 60.00 m² × 30 天 = 1,800.00 m²·天",
        "公区分摊 = 公区表用量 × 本户面积·天 ÷ 参与面积·天 = 350.000 kWh × 1,800.00 m²·天 ÷ "
        "6,000.00 m²·天 = 105.000 kWh",
    ]
    assert line_formula(lift, "en", {})[-1] == (
        "Common area share = common meter use × your area × days ÷ participating area × days = "
        "350.000 kWh × 1,800.00 m²·d ÷ 6,000.00 m²·d = 105.000 kWh"
    )


def test_loss_line_says_how_the_loss_came_about() -> None:
    loss = line("basic", "ACME", "loss", "MAIN")
    assert line_formula(loss, "zh-CN", {"MAIN": "总配电室"}) == [
        "线损 = 总配电室 用量 − 下级表计之和 = 100.000 kWh，"
        "线损率 λ = 100.000 ÷ 1,200.000 kWh = 8.33%",
        "线损分摊 = 租户承担线损 × 本户用量 ÷ 参与用量 = 60.000 kWh × 300.000 kWh ÷ 750.000 kWh "
        "= 24.000 kWh",
    ]
    assert line_formula(loss, "en", {})[0] == (
        "loss = MAIN meter use − Σ meters below it = 100.000 kWh, "
        "loss rate λ = 100.000 ÷ 1,200.000 kWh = 8.33%"
    )


KINDS = [
    ("basic", "landlord", "excess_loss", "MAIN", "超过上限 5.00%", "above the cap 5.00%"),
    ("blend", None, "loss", None, "× 本户混合权重 ÷ 权重合计", "your blended weight"),
    ("blend", None, "common", None, "× 本户独用 ÷ 独用合计", "your exclusive use"),
    ("coefficients", None, "loss", None, "本户系数·天 =", "your coefficient × days ="),
    ("formula", None, "loss", None, "公式电量 = Σ 每日差额 × clip(", "formula energy = Σ"),
    ("formula", "landlord", "formula_remainder", None, "（凉爽日）由业主承担", "(cool days)"),
    ("two_part", None, "demand", None, "需量电费分摊 = 需量电费 × 本户面积·天", "demand charge"),
    ("rounding", None, "loss", None, "× 本户面积·天 ÷ 参与面积·天", "your area × days"),
]


@pytest.mark.parametrize(("case", "party", "component", "origin", "zh", "en"), KINDS)
def test_every_kind_of_line_has_both_languages(
    case: str, party: str | None, component: str, origin: str | None, zh: str, en: str
) -> None:
    docs = statements(case)
    found = [
        x
        for d in docs
        if party is None or d["party"] == party
        for x in d["lines"]
        if x["component"] == component and (origin is None or x["origin"] == origin)
    ]
    assert found, f"{case} has no {component} line"
    x = found[0]
    chinese, english = line_formula(x, "zh-CN", {}), line_formula(x, "en", {})
    assert any(zh in f for f in chinese), chinese
    assert any(en in f for f in english), english
    assert not any(ENGLISH.search(f) for f in chinese), chinese
    # the line's own energy (or amount) is in the formula
    calc = x["calc"]
    money = calc["kind"] in ("demand", "unallocated")
    shown = group(calc["cny"], 2) if money else group(calc["kwh"])
    assert any(shown in f for f in chinese) and any(shown in f for f in english)


def test_per_unit_and_unallocated_lines() -> None:
    per_unit = {
        "component": "common",
        "origin": "LIFT",
        "register": "total",
        "calc": {
            "kind": "key",
            "basis": "per_unit",
            "origin_kwh": "90.000",
            "weight": "30.00",
            "weight_total": "90.00",
            "weight_unit": "unit_day",
            "kwh": "30.000",
        },
    }
    assert line_formula(per_unit, "zh-CN", {})[-1] == (
        "公区分摊 = 公区表用量 × 本户天数 ÷ 参与户·天 = 90.000 kWh × 30.00 户·天 ÷ 90.00 户·天 "
        "= 30.000 kWh"
    )
    assert "your days ÷ participants' unit-days" in line_formula(per_unit, "en", {})[-1]
    none = {
        "component": "unallocated",
        "origin": "X",
        "calc": {"kind": "unallocated", "cny": "12.3400"},
    }
    assert line_formula(none, "zh-CN", {}) == ["无分摊权重：¥12.34 由业主承担"]
    assert line_formula(none, "en", {}) == ["no key weight: ¥12.34 stays with the landlord"]


def test_applied_price_and_catalogue_ratio() -> None:
    flat = {"kind": "flat", "price": "0.50"}
    assert line_price(flat, 100.0, 4687.5) == {
        "applied": "0.46875",
        "catalogue": flat,
        "ratio": "0.9375",
    }
    assert line_price(flat, 100.0, 5000.0)["ratio"] is None  # the same: no note
    assert line_price({"kind": "demand", "price": "30"}, 0.0, 100.0)["applied"] is None


def test_view_has_subtotals_share_names_and_composition() -> None:
    doc = next(d for d in statements("tou") if d["party"] == "TA")
    view = statement_view(doc, "zh-CN")
    assert view is not None
    assert (view.own_cents, view.shared_cents, view.total_cents) == (24300, 1673, 25973)
    assert view.share == "41.89%" and view.bill_cents == 62000
    assert [v.title for v in view.own] == [f"本户用电 · {r}" for r in "尖峰平谷"]
    assert view.composition == [("本户用电", 24300), ("线损", 1673)]
    assert view.own[0].money == "40.000 kWh × 单价 1.20 元/kWh = ¥48.00"
    usage = [r["usage"] for r in view.meters[0].registers]
    assert usage[0] == "(本期 − 上期) × 倍率 = 用量：(50.00 − 10.00) × 1 = 40.000 kWh"
    english = statement_view(doc, "en")
    assert english is not None and english.meters[0].registers[3]["register"] == "valley"


def test_old_statements_are_shown_as_signed() -> None:
    doc = next(d for d in statements("basic") if d["party"] == "ACME")
    assert statement_view({**doc, "schema": "mf.statement/1"}, "zh-CN") is None


def test_readings_at_a_stays_ends() -> None:
    series = {
        "2026-04-01": MeterReading(values={"total": Decimal("100")}),
        "2026-04-16": MeterReading(values={"total": Decimal("135")}),
        "2026-04-20": MeterReading(values={"total": Decimal("140")}, method="interpolated"),
    }
    assert edge_reading(series, "2026-04-01", 1.0) == {
        "values": {"total": "100"},
        "quality": "good",
        "source": "read",
    }
    assert edge_reading(series, "2026-04-11", 1.0) == {
        "values": {"total": "123.33"},
        "quality": "interpolated",
        "source": "interpolated",
    }
    assert edge_reading(series, "2026-04-20", 1.0)["source"] == "interpolated"
    estimated = edge_reading(
        series, "2026-05-01", 20.0, {"total": 100.0}, {"total": Decimal("135")}
    )
    assert estimated == {
        "values": {"total": "140.00"},
        "quality": "estimated",
        "source": "estimated",
    }
    assert edge_reading({}, "2026-04-01", 1.0) is None
    assert date.fromisoformat("2026-04-11")  # ISO days throughout


def test_a_tenant_sees_only_its_own_meters_and_nodes_in_flags() -> None:
    flags = [
        Flag("prorated", "meters C1, M0, UA, UB", "split by days", False),
        Flag("estimated", "meter UB", "by history (3 meter-register-days)", False),
        Flag("loss_over_cap", "node MAIN", "λ above the cap", False),
        Flag("negative_residual", "node BRANCH-2", "children measure more", True),
        Flag("bill_differs_from_catalog", "pot total/flat", "bill differs", False),
    ]
    assert tenant_flags(flags, {"UA"}, {"A", "MAIN"}) == [
        {"code": "prorated", "subject": "meter UA", "holds": False, "message": ""},
        {
            "code": "loss_over_cap",
            "subject": "node MAIN",
            "holds": False,
            "message": "λ above the cap",
        },
        {
            "code": "bill_differs_from_catalog",
            "subject": "pot total/flat",
            "holds": False,
            "message": "bill differs",
        },
    ]
