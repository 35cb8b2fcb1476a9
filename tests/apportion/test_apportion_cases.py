"""The hard cases of docs/domain.md §4, one case file each, with cents computed by hand.

Conventions of the arithmetic in the comments: "p" is the pot's price per kWh at the main
meter (bill cents ÷ main kWh); own use = kWh × p; a key splits an amount by weight ÷ Σ
weights; largest remainder: floor every line, hand the leftover cents to the largest
remainders, ties to the earlier line (own use first, then each allocating node in id
order, landlord lines of a node before its tenant lines).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cloud.apportion.case.loading import case_from_data, load_case
from cloud.apportion.engine import apportion
from cloud.apportion.engine_result import EngineResult
from cloud.apportion.errors import ConsumptionError
from cloud.apportion.estimation import Method
from cloud.apportion.statement import LineRow, line_rows

CASES = Path(__file__).parents[1] / "cases"


def raw(name: str) -> dict[str, Any]:
    return yaml.safe_load((CASES / f"{name}.yaml").read_text())


def run(name: str, raw_case: dict[str, Any] | None = None) -> tuple[EngineResult, list[LineRow]]:
    case = case_from_data(raw_case) if raw_case is not None else load_case(CASES / f"{name}.yaml")
    result = apportion(case.to_engine_inputs())
    return result, line_rows(result)


def cents(rows: list[LineRow], **match: str) -> int:
    """Σ cents of the lines whose fields equal ``match`` (e.g. party="TA", component=...)."""
    return sum(r.cents for r in rows if all(getattr(r, k) == v for k, v in match.items()))


def totals(rows: list[LineRow]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for r in rows:
        out[r.party] += r.cents
    return dict(out)


def flags(result: EngineResult) -> set[str]:
    return {f.code for f in result.flags}


def test_every_pot_reconciles_to_the_cent_in_every_case() -> None:
    for path in sorted(CASES.glob("*.yaml")):
        if path.stem == "decreasing":
            continue
        result = apportion(load_case(path).to_engine_inputs())
        assert result.lines.pot_cents(len(result.pots)) == [p.cents for p in result.pots], path
        assert sum(p.cents for p in result.pots) == sum(r.cents for r in line_rows(result))


def test_loss_above_the_cap_goes_to_the_landlord_and_vacant_units_stay_in_the_key() -> None:
    # basic.yaml (the worked example of docs/apportionment.md). Main 112.0 × 10 = 1200 kWh,
    # bill 72000 cents → p = 60 c/kWh. Units A101 300, A102 250, A103 (vacant) 50, lift 350,
    # office 150 → children 1100, residual 100 kWh, λ = 8.33 % > cap 5 %.
    result, rows = run("basic")
    # own use: 300 × 60 = 18000, 250 × 60 = 15000, vacant 50 × 60 = 3000, office 9000
    assert cents(rows, unit="A101", component="own_use") == 18000
    assert cents(rows, unit="A103", component="own_use", party="landlord") == 3000
    assert cents(rows, unit="OFFICE", component="landlord_load") == 9000
    # lift 350 × 60 = 21000 by area 60 : 40 : 100 → 6300, 4200, 10500 (vacant → landlord)
    assert cents(rows, unit="A101", component="common") == 6300
    assert cents(rows, unit="A102", component="common") == 4200
    assert cents(rows, unit="A103", component="common", party="landlord") == 10500
    # loss 100 kWh = 6000; tenants carry 5 % × 1200 = 60 kWh = 3600, landlord 2400;
    # 3600 by usage 300 : 250 : 50 : 150 → 1440, 1200, 240 (vacant), 720 (office)
    assert cents(rows, component="excess_loss") == 2400
    assert [cents(rows, unit=u, component="loss") for u in ("A101", "A102", "A103", "OFFICE")] == [
        1440,
        1200,
        240,
        720,
    ]
    assert totals(rows) == {"ACME": 25740, "BETA": 20400, "landlord": 25860}
    main = result.inputs.tree.ids.index("MAIN")
    assert result.loss_rate[main] == pytest.approx(100 / 1200)
    assert "loss_over_cap" in flags(result) and not result.held


def test_vacant_units_can_leave_the_key_with_the_redistribute_policy() -> None:
    # Same case, lift rule vacant: redistribute → 21000 by area 60 : 40 → 12600, 8400.
    data = raw("basic")
    lift = next(n for n in data["tree"] if n["id"] == "LIFT")
    lift["rule"]["vacant"] = "redistribute"
    _, rows = run("basic", data)
    assert cents(rows, component="common", origin="LIFT", unit="A101") == 12600
    assert cents(rows, component="common", origin="LIFT", unit="A102") == 8400
    assert cents(rows, component="common", origin="LIFT", unit="A103") == 0


def test_rollover_is_unwrapped_when_plausible() -> None:
    # UA 99801 → 99900 → 99999 → 98 (wraps at 100000): 99 + 99 + (98 + 100000 − 99999 = 99)
    # = 297 kWh; average 9.9 kWh/day, the wrap's 99 kWh ≤ 3 × 9.9 × 10 → plausible.
    # Main 420 kWh, bill 21000 → p = 50. UB 103. Residual 420 − 297 − 103 = 20 kWh.
    # own: 297 × 50 = 14850, 103 × 50 = 5150; loss 1000 by 297 : 103 → 742.5, 257.5 → tie
    # at .5, the earlier line (A) takes the cent → 743, 257.
    result, rows = run("rollover")
    assert cents(rows, party="TA", component="own_use") == 14850
    assert cents(rows, party="TA", component="loss") == 743
    assert cents(rows, party="TB", component="loss") == 257
    assert totals(rows) == {"TA": 15593, "TB": 5407}
    assert "rollover" in flags(result) and not result.held


def test_implausible_rollover_is_flagged_estimated_and_holds_the_run() -> None:
    # UA drops 99900 → 99000: a wrap would be 99100 kWh in 10 days, far above 3 × 9.9 × 10.
    # The 10 days are estimated from comparable units: UB 103 kWh / (30 d × 40 m²)
    # × 60 m² × 10 d = 51.5 kWh; UA = 99 + 51.5 + (99099 − 99000 = 99) = 249.5 kWh.
    data = raw("rollover")
    data["readings"]["UA"] = {
        "2026-04-01": 99801.0,
        "2026-04-11": 99900.0,
        "2026-04-21": 99000.0,
        "2026-05-01": 99099.0,
    }
    result, _ = run("rollover", data)
    ua = result.inputs.meters.ids.index("UA")
    assert result.estimated_kwh[ua].sum() == pytest.approx(51.5)
    assert result.measured_kwh[ua].sum() + result.estimated_kwh[ua].sum() == pytest.approx(249.5)
    assert result.estimation_method[ua, 0] == Method.COMPARABLE_UNITS
    assert {"rollover_implausible", "estimated"} <= flags(result)
    assert result.held


def test_a_decreasing_register_is_an_error_unless_the_meter_is_bidirectional() -> None:
    # M0 (bidirectional) goes 5000 → 4990 → 5400: net 400 kWh, accepted. UA (not
    # bidirectional, no capacity) goes 500 → 490: an error naming the meter and the day.
    with pytest.raises(ConsumptionError, match=r"meter 'UA' register total.*2026-05-01"):
        run("decreasing")
    data = raw("decreasing")
    data["meters"][1]["bidirectional"] = True
    result, _ = run("decreasing", data)
    main = result.inputs.tree.ids.index("MAIN")
    assert result.node_kwh[main].sum() == pytest.approx(400.0)
    assert "negative_usage" in flags(result) and result.held  # A exported 10 kWh net


def test_meter_replaced_mid_period_sums_both_segments_with_their_multipliers() -> None:
    # UA ×1: 100 → 250 = 150 kWh; UA2 ×2 from 04-16: (80 − 0) × 2 = 160 kWh → A = 310.
    # UB 90, main 420 → residual 20. p = 50: own 15500, 4500; loss 1000 by 310 : 90 →
    # 775, 225.
    result, rows = run("replacement")
    assert cents(rows, party="TA", component="own_use") == 15500
    assert cents(rows, party="TA", component="loss") == 775
    assert totals(rows) == {"TA": 16275, "TB": 4725}
    ids = result.inputs.meters.ids
    assert result.measured_kwh[ids.index("UA")].sum() == pytest.approx(150.0)
    assert result.measured_kwh[ids.index("UA2")].sum() == pytest.approx(160.0)


def test_gaps_are_estimated_in_order_and_too_many_estimates_hold_the_run() -> None:
    # UA: 100 → 180 by 04-21, then 10 days × history 4 kWh/day = 40 → 120 kWh.
    # UC: 50 → 80 by 04-11 (the 04-21 reading timed out), then 20 days × comparable units
    # (UB: 90 kWh / (30 d × 40 m²) = 0.075 kWh/m²·d) × 50 m² = 75 → 105 kWh.
    # Estimates 115 / 315 kWh = 36.5 % > 10 % → held.
    # p = 50 (16500 / 330): own 6000, 4500, 5250; loss 15 kWh = 750 by usage 120 : 90 : 105
    # → 285.71, 214.29, 250 → floors 749, leftover 1 → A (.71) → 286, 214, 250.
    result, rows = run("gaps")
    ids = result.inputs.meters.ids
    assert result.estimated_kwh[ids.index("UA")].sum() == pytest.approx(40.0)
    assert result.estimated_kwh[ids.index("UC")].sum() == pytest.approx(75.0)
    assert result.estimation_method[ids.index("UA"), 0] == Method.HISTORY
    assert result.estimation_method[ids.index("UC"), 0] == Method.COMPARABLE_UNITS
    assert totals(rows) == {"TA": 6286, "TB": 4714, "TC": 5500}
    assert "estimates_over_limit" in flags(result) and result.held


def test_too_many_estimates_fall_back_to_area_when_the_rule_says_so() -> None:
    # Same, on_estimate_excess: area → loss 750 by area 60 : 40 : 50 → 300, 200, 250.
    data = raw("gaps")
    data["tree"][0]["rule"]["on_estimate_excess"] = "area"
    result, rows = run("gaps", data)
    assert [cents(rows, party=p, component="loss") for p in ("TA", "TB", "TC")] == [300, 200, 250]
    assert totals(rows) == {"TA": 6300, "TB": 4700, "TC": 5500}
    assert "area_fallback" in flags(result) and not result.held


def test_negative_residual_is_never_passed_on_and_holds_the_run() -> None:
    # Main 300 kWh but A 200 + B 120 = 320: λ = −6.7 %. The bill (15000) is split over the
    # 320 measured kWh (46.875 c/kWh): 9375 and 5625, no loss line, run held.
    result, rows = run("negative_residual")
    assert totals(rows) == {"TA": 9375, "TB": 5625}
    assert not [r for r in rows if r.component == "loss"]
    assert "negative_residual" in flags(result) and result.held


def test_move_in_mid_period_uses_the_handover_readings_and_days() -> None:
    # A: X 100 → 130 (30 kWh, 10 d), vacant 130 → 135 (5 kWh, 5 d), Y 135 → 195 (60, 15 d);
    # B (Z) 105 kWh, lift 60, main 280 → residual 20. p = 50 (14000 / 280).
    # own: X 1500, vacant 250, Y 3000, Z 5250.
    # lift 60 × 50 = 3000 by area × days 600 : 300 : 900 : 1200 (3000) → 600, 300, 900, 1200.
    # loss 1000 by usage 30 : 5 : 60 : 105 (200) → 150, 25, 300, 525.
    _, rows = run("move_in")
    assert cents(rows, party="X") == 1500 + 600 + 150
    assert cents(rows, party="Y") == 3000 + 900 + 300
    assert cents(rows, party="Z") == 5250 + 1200 + 525
    assert cents(rows, party="landlord") == 250 + 300 + 25
    x_rows = [r for r in rows if r.party == "X"]
    assert {(r.start, r.end) for r in x_rows} == {("2026-04-01", "2026-04-11")}


def test_time_of_use_registers_are_separate_pots() -> None:
    # Main T1..T4 = 100, 200, 300, 400 kWh at 1.20, 1.00, 0.60, 0.30 → pots 12000, 20000,
    # 18000, 12000. A = 40, 90, 100, 150; B = 50, 100, 180, 230; residual 10, 10, 20, 20.
    # T1: own 4800, 6000; loss 1200 by 40 : 50 → 533.33, 666.67 → B takes the cent → 533, 667
    # T2: own 9000, 10000; loss 1000 by 90 : 100 → 473.68, 526.32 → A → 474, 526
    # T3: own 6000, 10800; loss 1200 by 100 : 180 → 428.57, 771.43 → A → 429, 771
    # T4: own 4500, 6900; loss 600 by 150 : 230 → 236.84, 363.16 → A → 237, 363
    _, rows = run("tou")
    assert [cents(rows, party="TA", register=r) for r in ("T1", "T2", "T3", "T4")] == [
        5333,
        9474,
        6429,
        4737,
    ]
    assert [cents(rows, party="TB", register=r) for r in ("T1", "T2", "T3", "T4")] == [
        6667,
        10526,
        11571,
        7263,
    ]


def test_tou_peak_to_valley_ratio_below_three_is_flagged() -> None:
    data = raw("tou")
    data["tariffs"][0]["prices"]["T4"] = 0.50  # 1.00 : 0.50 = 2 : 1
    result, _ = run("tou", data)
    assert "tou_ratio_low" in flags(result) and not result.held


def test_tiers_are_prorated_by_days_when_the_tariff_changes() -> None:
    # v1 (15 d): bounds 100, 200 kWh; main 260 → 100 × .50 + 100 × .60 + 60 × .80 = 158.00.
    # v2 (15 d): main 240 → 100 × .55 + 100 × .65 + 40 × .85 = 154.00. Bill 312.00 → pots
    # 15800 and 15400 (catalog split).
    # v1: A 120, B 100, loss 40. own 15800 × 120/260 = 7292.31, × 100/260 = 6076.92;
    #     loss 2430.77 by 120 : 100 → 1325.87, 1104.90; floors 15797, leftover 3 → B own
    #     (.92), B loss (.90), A loss (.87) → 7292, 6077, 1326, 1105.
    # v2: A 110, B 100, loss 30. own 7058.33, 6416.67; loss 1925 → 1008.33, 916.67;
    #     floors 15398, leftover 2 → the two .67 → 7058, 6417, 1008, 917.
    result, rows = run("tiered")
    assert [(p.version, p.cents, p.catalog_cents) for p in result.pots] == [
        ("tiers-v1", 15800, 15800),
        ("tiers-v2", 15400, 15400),
    ]
    assert cents(rows, party="TA", tariff="tiers-v1") == 7292 + 1326
    assert cents(rows, party="TB", tariff="tiers-v1") == 6077 + 1105
    assert cents(rows, party="TA", tariff="tiers-v2") == 7058 + 1008
    assert cents(rows, party="TB", tariff="tiers-v2") == 6417 + 917
    assert totals(rows) == {"TA": 16684, "TB": 14516}


def test_tariff_change_mid_period_splits_by_readings_or_by_days() -> None:
    # Main 300 kWh, no reading at 04-11: 100 (10 d) + 200 (20 d). Catalog 50.00 + 120.00 =
    # bill 170.00 → pots 5000, 12000. UA read at 04-11: 40 + 110; UB by days: 40 + 80.
    # v1 (p 50): own 2000, 2000; loss 20 kWh = 1000 by 40 : 40 → 500, 500.
    # v2 (p 60): own 6600, 4800; loss 10 kWh = 600 by 110 : 80 → 347.37, 252.63 → B → 347, 253
    result, rows = run("tariff_change")
    assert [p.cents for p in result.pots] == [5000, 12000]
    assert cents(rows, party="TA", tariff="flat-v1") == 2500
    assert cents(rows, party="TB", tariff="flat-v1") == 2500
    assert cents(rows, party="TA", tariff="flat-v2") == 6947
    assert cents(rows, party="TB", tariff="flat-v2") == 5053
    assert [f.subject for f in result.flags if f.code == "prorated"] == ["meters M0, UB"]


def test_two_part_tariff_splits_the_demand_charge_by_area_and_days() -> None:
    # Demand 200000 by area × days: A 60 × 30 = 1800, B (TB) 40 × 15 = 600, B vacant 600 →
    # 120000, 40000, 40000 (landlord).
    # Energy 24000 at 60 c/kWh: own A 200 → 12000, TB 100 → 6000, vacant 50 → 3000; loss 50
    # kWh = 3000 by 200 : 100 : 50 → 1714.29, 857.14, 428.57 → leftover 1 → vacant (.57)
    # → 1714, 857, 429.
    result, rows = run("two_part")
    assert [(p.register, p.cents, p.catalog_cents) for p in result.pots] == [
        ("total", 24000, 24000),
        ("demand", 200000, 200000),
    ]
    assert cents(rows, party="TA", register="demand") == 120000
    assert cents(rows, party="TB", register="demand") == 40000
    assert cents(rows, party="landlord", register="demand") == 40000
    assert totals(rows) == {"TA": 133714, "TB": 46857, "landlord": 43429}


def test_rounding_hands_the_odd_cent_to_the_first_line_on_a_tie() -> None:
    # 10000 cents over three equal areas: 3333.33 each, floors 9999, the one leftover cent
    # goes to the first line in id order (U1), whatever the file's order.
    _, rows = run("rounding")
    assert totals(rows) == {"T1": 3334, "T2": 3333, "T3": 3333}


def test_rounding_gives_leftover_cents_to_the_largest_remainders() -> None:
    # 100 cents by coefficients 1 … 7 (Σ 28): 3.57, 7.14, 10.71, 14.29, 17.86, 21.43, 25;
    # floors 97, leftover 3 → .86 (K5), .71 (K3), .57 (K1) → 4, 7, 11, 14, 18, 21, 25.
    _, rows = run("coefficients")
    assert [cents(rows, unit=f"K{i}") for i in range(1, 8)] == [4, 7, 11, 14, 18, 21, 25]


def test_formula_key_passes_on_the_lobby_air_conditioning_by_temperature() -> None:
    # Daily residual (main − units) 10, 20, 20, 30, 20 kWh; t_max 24, 28, 31, 36, 38 →
    # factors 0, .2, .5, 1, 1 (38 °C clipped to 1): Σ = 0 + 4 + 10 + 30 + 20 = 64 kWh passed
    # on, 36 kWh stays with the landlord. p = 80 (20000 / 250).
    # own 100 × 80 = 8000, 50 × 80 = 4000; formula remainder 36 × 80 = 2880;
    # 64 × 80 = 5120 by area 60 : 40 → 3072, 2048.
    _, rows = run("formula")
    assert cents(rows, component="formula_remainder") == 2880
    assert cents(rows, party="TA", component="loss") == 3072
    assert cents(rows, party="TB", component="loss") == 2048
    assert totals(rows) == {"TA": 11072, "TB": 6048, "landlord": 2880}
    line = next(r for r in rows if r.party == "TA" and r.component == "loss")
    assert "clip((t_max_d − 26) ÷ 10, 0, 1) = 64.000 kWh of 100.000 kWh" in line.explanation


def test_formula_key_on_a_metered_negotiated_common_area() -> None:
    # The same lobby on its own meter AC (10, 20, 20, 30, 20 kWh a day), a negotiated
    # common area with the formula key; the main's residual is now 0. Same money: 64 kWh
    # passed on (3072, 2048 as common shares), 36 kWh × 80 = 2880 to the landlord.
    data = raw("formula")
    data["tree"][0]["rule"] = {"basis": "usage"}
    data["meters"].append({"id": "AC"})
    data["tree"].append(
        {
            "id": "LOBBY",
            "kind": "common",
            "parent": "MAIN",
            "meter": "AC",
            "rule": {
                "basis": "formula",
                "common_type": "negotiated",
                "formula": {"driver": "t_max", "base": 26, "span": 10},
            },
        }
    )
    days = list(data["readings"]["M0"])
    data["readings"]["AC"] = dict(zip(days, [0.0, 10.0, 30.0, 50.0, 80.0, 100.0], strict=True))
    _, rows = run("formula", data)
    assert cents(rows, party="TA", component="common", origin="LOBBY") == 3072
    assert cents(rows, party="TB", component="common", origin="LOBBY") == 2048
    assert cents(rows, component="formula_remainder", origin="LOBBY") == 2880
    assert totals(rows) == {"TA": 11072, "TB": 6048, "landlord": 2880}


def test_blend_key_and_an_exclusive_common_area() -> None:
    # Main 500, A 300, B 100, B's pump 50 → residual 50 kWh; p = 50.
    # own 15000, 5000; pump 2500 → B alone; loss 2500 by 0.6 × usage + 0.4 × area:
    # A 0.6 × 0.75 + 0.4 × 0.5 = 0.65 → 1625, B 0.35 → 875.
    _, rows = run("blend")
    assert cents(rows, party="TB", component="common", origin="B-PUMP") == 2500
    assert cents(rows, party="TA", component="loss") == 1625
    assert totals(rows) == {"TA": 16625, "TB": 8375}


def test_a_markup_on_resold_grid_power_holds_the_run() -> None:
    data = raw("basic")
    data["tariffs"][0]["markup"] = 0.05
    result, _ = run("basic", data)
    assert "markup_over_cap" in flags(result) and result.held


def test_bill_far_from_the_catalog_price_is_flagged() -> None:
    data = raw("basic")
    data["bill"]["amounts"]["total"] = 800.00  # catalog 1200 kWh × 0.60 = 720.00
    result, rows = run("basic", data)
    assert "bill_differs_from_catalog" in flags(result)
    assert sum(r.cents for r in rows) == 80000


def test_input_order_never_changes_the_lines() -> None:
    data = raw("move_in")
    shuffled = dict(reversed(list(data.items())))
    shuffled["units"] = list(reversed(data["units"]))
    shuffled["tree"] = list(reversed(data["tree"]))
    shuffled["meters"] = list(reversed(data["meters"]))
    shuffled["readings"] = {
        m: dict(reversed(list(v.items()))) for m, v in reversed(list(data["readings"].items()))
    }
    a = case_from_data(data)
    b = case_from_data(shuffled)
    assert a.input_hash() == b.input_hash()
    ra, rb = apportion(a.to_engine_inputs()), apportion(b.to_engine_inputs())
    assert line_rows(ra) == line_rows(rb)
    assert np.array_equal(ra.lines.cents, rb.lines.cents)
