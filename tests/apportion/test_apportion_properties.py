"""Allocation invariants on random trees, readings and rules (hypothesis): lines sum
exactly to every pot of the bill, no line is negative, and the order of the input never
changes the output."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.apportion.case.loading import case_from_data
from cloud.apportion.engine import apportion
from cloud.apportion.rounding import largest_remainder
from cloud.apportion.statement import line_rows

DAYS = 30
START = "2026-04-01"
END = "2026-05-01"
BASES = ["area", "usage", "per_unit", "blend", "coefficient"]


def day(k: int) -> str:
    return f"2026-04-{k + 1:02d}" if k < DAYS else END


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    registers = draw(st.sampled_from([["total"], ["T1", "T2"]]))
    branches = draw(st.integers(0, 2))
    count = draw(st.integers(1, 6))
    kwh = st.integers(0, 50_000).map(lambda c: c / 100)
    units, tree, meters, readings, occupancy = [], [], [], {}, {}
    tree.append({"id": "MAIN", "kind": "main", "meter": "M-MAIN"})
    parents = ["MAIN"] + [f"BR{i}" for i in range(branches)]
    use_below: dict[str, list[float]] = {p: [0.0] * len(registers) for p in parents}

    def read(meter: str, use: list[float], cut: int | None) -> None:
        start = [draw(kwh) for _ in registers]
        points = {day(0): start, day(DAYS): [s + u for s, u in zip(start, use, strict=True)]}
        if cut is not None:
            points[day(cut)] = [s + u / 2 for s, u in zip(start, use, strict=True)]
        readings[meter] = {
            at: (values[0] if len(registers) == 1 else dict(zip(registers, values, strict=True)))
            for at, values in points.items()
        }

    cut = draw(st.one_of(st.none(), st.integers(1, DAYS - 1)))
    for i in range(count):
        uid, parent = f"U{i}", draw(st.sampled_from(parents))
        units.append({"id": uid, "area": draw(st.integers(1, 300))})
        metered = draw(st.booleans()) or i == 0
        node: dict[str, Any] = {"id": uid, "kind": "unit", "parent": parent}
        if metered:
            use = [draw(kwh) for _ in registers]
            node["meter"] = f"M-{uid}"
            meters.append({"id": f"M-{uid}"})
            read(f"M-{uid}", use, cut)
            use_below[parent] = [a + b for a, b in zip(use_below[parent], use, strict=True)]
        tree.append(node)
        stay = draw(st.sampled_from(["vacant", "whole", "until", "from"]))
        if stay == "whole":
            occupancy[uid] = [{"tenant": f"T{i}", "from": START}]
        elif stay == "until" and cut is not None:
            occupancy[uid] = [{"tenant": f"T{i}", "from": START, "to": day(cut)}]
        elif stay == "from" and cut is not None:
            occupancy[uid] = [{"tenant": f"T{i}", "from": day(cut)}]
    if draw(st.booleans()):
        use = [draw(kwh) for _ in registers]
        meters.append({"id": "M-LIFT"})
        read("M-LIFT", use, None)
        tree.append(
            {
                "id": "LIFT",
                "kind": "common",
                "parent": "MAIN",
                "meter": "M-LIFT",
                "rule": {
                    "basis": draw(st.sampled_from(["area", "usage", "per_unit", "blend"])),
                    "vacant": draw(st.sampled_from(["landlord", "redistribute"])),
                },
            }
        )
        use_below["MAIN"] = [a + b for a, b in zip(use_below["MAIN"], use, strict=True)]
    if draw(st.booleans()):
        use = [draw(kwh) for _ in registers]
        meters.append({"id": "M-OFFICE"})
        read("M-OFFICE", use, None)
        tree.append(
            {
                "id": "OFFICE",
                "kind": "landlord",
                "parent": "MAIN",
                "meter": "M-OFFICE",
                "area": draw(st.integers(0, 100)),
            }
        )
        use_below["MAIN"] = [a + b for a, b in zip(use_below["MAIN"], use, strict=True)]
    unit_ids = [u["id"] for u in units] + (
        ["OFFICE"] if any(n["id"] == "OFFICE" for n in tree) else []
    )
    for p in reversed(parents):
        residual = [draw(st.integers(-2_000, 20_000).map(lambda c: c / 100)) for _ in registers]
        use = [max(a + r, 0.0) for a, r in zip(use_below[p], residual, strict=True)]
        meter = "M-MAIN" if p == "MAIN" else f"M-{p}"
        meters.append({"id": meter})
        read(meter, use, None)
        basis = draw(st.sampled_from(BASES))
        rule: dict[str, Any] = {"basis": basis, "p": draw(st.sampled_from([0.5, 0.6, 0.7]))}
        if basis == "coefficient":
            rule["coefficients"] = {u: draw(st.integers(0, 5)) for u in unit_ids}
        if draw(st.booleans()):
            rule["loss_cap"] = draw(st.sampled_from([0, 0.03, 0.05, 0.2]))
        if p == "MAIN":
            tree[0]["rule"] = rule
        else:
            tree.append({"id": p, "kind": "branch", "parent": "MAIN", "meter": meter, "rule": rule})
            use_below["MAIN"] = [a + b for a, b in zip(use_below["MAIN"], use, strict=True)]
    price = {r: draw(st.sampled_from([0.3, 0.6, 1.2])) for r in registers}
    tariffs = [
        {
            "id": "v1",
            "kind": "tou" if len(registers) > 1 else "flat",
            "from": "2026-01-01",
            "prices": price,
        }
    ]
    if cut is not None and draw(st.booleans()):
        tariffs[0]["to"] = day(cut)
        tariffs.append(
            {
                "id": "v2",
                "kind": tariffs[0]["kind"],
                "from": day(cut),
                "prices": {r: p * 2 for r, p in price.items()},
            }
        )
    amounts = {r: draw(st.integers(0, 10_000_000)) / 100 for r in registers}
    return {
        "period": {"start": START, "end": END},
        "registers": registers,
        "units": units,
        "meters": meters,
        "tree": tree,
        "occupancy": occupancy,
        "readings": readings,
        "tariffs": tariffs,
        "bill": {"invoice": "INV", "amounts": amounts},
        "policy": {"catalog_tolerance": 1000},
    }


def shuffled(data: dict[str, Any], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)

    def mix(items: list[Any]) -> list[Any]:
        items = list(items)
        rng.shuffle(items)
        return items

    out = dict(mix(list(data.items())))
    for key in ("units", "meters", "tree", "tariffs"):
        out[key] = mix(data[key])
    out["readings"] = {
        m: dict(mix(list(v.items()))) for m, v in mix(list(data["readings"].items()))
    }
    out["occupancy"] = dict(mix(list(data["occupancy"].items())))
    return out


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@SETTINGS
@given(cases())
def test_lines_sum_exactly_to_every_pot_of_the_bill(data: dict[str, Any]) -> None:
    case = case_from_data(data)
    result = apportion(case.to_engine_inputs())
    assert result.lines.pot_cents(len(result.pots)) == [p.cents for p in result.pots]
    bill = sum(round(a * 100) for a in data["bill"]["amounts"].values())
    assert sum(r.cents for r in line_rows(result)) == bill


@SETTINGS
@given(cases())
def test_no_line_is_negative(data: dict[str, Any]) -> None:
    result = apportion(case_from_data(data).to_engine_inputs())
    assert (result.lines.cents >= 0).all()
    assert all(r.cents >= 0 for r in line_rows(result) if r.party != "landlord")


@SETTINGS
@given(cases(), st.integers(0, 2**32 - 1))
def test_input_order_gives_identical_output(data: dict[str, Any], seed: int) -> None:
    a = case_from_data(data)
    b = case_from_data(shuffled(data, seed))
    assert a.input_hash() == b.input_hash()
    ra, rb = apportion(a.to_engine_inputs()), apportion(b.to_engine_inputs())
    assert line_rows(ra) == line_rows(rb)
    assert [f.code for f in ra.flags] == [f.code for f in rb.flags]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9), st.lists(st.integers(0, 10**6), min_size=1, max_size=50))
def test_largest_remainder_is_exact_and_within_a_cent(total: int, weights: list[int]) -> None:
    w = np.array(weights, dtype=np.float64)
    if w.sum() == 0:
        w[:] = 1.0
    ideal = total * w / w.sum()
    cents = largest_remainder(total, ideal)
    assert int(cents.sum()) == total
    assert (np.abs(cents - ideal) < 1.0 + 1e-6).all()
    assert (cents >= 0).all()


@st.composite
def balanced_trees(draw: st.DrawFn) -> dict[str, Any]:
    """MAIN → BR (metered or not) → units whose readings add up to the branch's and the main
    meter's exactly, as two-decimal registers do; the period split or not by a move-in and a
    tariff change."""
    units = draw(st.integers(1, 6))
    cents = st.integers(0, 9_999_999)
    use = [draw(cents) for _ in range(units)]

    def reading(used: int) -> dict[str, Decimal]:
        start = draw(cents)
        return {START: Decimal(start) / 100, END: Decimal(start + used) / 100}

    branch: dict[str, Any] = {"id": "BR", "kind": "branch", "parent": "MAIN"}
    branch["rule"] = {"basis": draw(st.sampled_from(BASES[:3]))}
    readings = {f"M-U{i}": reading(u) for i, u in enumerate(use)}
    readings["M-MAIN"] = reading(sum(use))
    meters = [{"id": m} for m in readings]
    if draw(st.booleans()):
        branch["meter"] = "M-BR"
        readings["M-BR"] = reading(sum(use))
        meters.append({"id": "M-BR"})
    cut = draw(st.one_of(st.none(), st.integers(1, DAYS - 1)))
    tariffs: list[dict[str, Any]] = [{"id": "v1", "kind": "flat", "from": "2026-01-01"}]
    tariffs[0]["price"] = Decimal("0.6")
    occupancy = {}
    if cut is not None:
        occupancy["U0"] = [{"tenant": "T0", "from": day(cut)}]
        if draw(st.booleans()):
            tariffs[0]["to"] = day(cut)
            tariffs.append({"id": "v2", "kind": "flat", "from": day(cut), "price": Decimal("0.7")})
    return {
        "period": {"start": START, "end": END},
        "units": [{"id": f"U{i}", "area": 10 + i} for i in range(units)],
        "meters": meters,
        "tree": [
            {"id": "MAIN", "kind": "main", "meter": "M-MAIN", "rule": {"basis": "usage"}},
            branch,
            *(
                {"id": f"U{i}", "kind": "unit", "parent": "BR", "meter": f"M-U{i}"}
                for i in range(units)
            ),
        ],
        "occupancy": occupancy,
        "readings": readings,
        "tariffs": tariffs,
        "bill": {"invoice": "INV", "amounts": {"total": Decimal("1234.56")}},
        "policy": {"catalog_tolerance": 1000},
    }


@SETTINGS
@given(balanced_trees())
def test_an_exactly_zero_residual_never_holds_a_run(data: dict[str, Any]) -> None:
    result = apportion(case_from_data(data).to_engine_inputs())
    assert [f for f in result.flags if f.code == "negative_residual"] == []


@st.composite
def blends_with_vacancy(draw: st.DrawFn) -> tuple[dict[str, Any], float]:
    """A common meter split by ``blend`` with ``vacant: redistribute`` over units some of
    which are vacant all period; the main meter measures exactly the units and the common."""
    p = draw(st.sampled_from([0.3, 0.5, 0.7]))
    count = draw(st.integers(3, 7))
    occupied = draw(st.lists(st.booleans(), min_size=count, max_size=count))
    occupied[0], occupied[-1] = True, False  # at least one of each
    use = [draw(st.integers(1, 900_000)) for _ in range(count)]
    lift = draw(st.integers(100, 900_000))
    readings = {f"M-U{i}": {START: Decimal(0), END: Decimal(u) / 100} for i, u in enumerate(use)}
    readings["M-LIFT"] = {START: Decimal(0), END: Decimal(lift) / 100}
    readings["M-MAIN"] = {START: Decimal(0), END: Decimal(sum(use) + lift) / 100}
    data = {
        "period": {"start": START, "end": END},
        "units": [{"id": f"U{i}", "area": draw(st.integers(10, 300))} for i in range(count)],
        "meters": [{"id": m} for m in readings],
        "tree": [
            {"id": "MAIN", "kind": "main", "meter": "M-MAIN", "rule": {"basis": "area"}},
            {
                "id": "LIFT",
                "kind": "common",
                "parent": "MAIN",
                "meter": "M-LIFT",
                "rule": {"basis": "blend", "p": p, "vacant": "redistribute"},
            },
            *(
                {"id": f"U{i}", "kind": "unit", "parent": "MAIN", "meter": f"M-U{i}"}
                for i in range(count)
            ),
        ],
        "occupancy": {
            f"U{i}": [{"tenant": f"T{i}", "from": START}] for i in range(count) if occupied[i]
        },
        "readings": readings,
        "tariffs": [{"id": "v1", "kind": "flat", "from": "2026-01-01", "price": Decimal("0.6")}],
        "bill": {"invoice": "INV", "amounts": {"total": Decimal("98765.43")}},
        "policy": {"catalog_tolerance": 1000},
    }
    return data, p


@SETTINGS
@given(blends_with_vacancy())
def test_blend_with_redistribute_mixes_over_the_remaining_members(
    case: tuple[dict[str, Any], float],
) -> None:
    data, p = case
    result = apportion(case_from_data(data).to_engine_inputs())
    common = {r.unit: r.ideal_cents for r in line_rows(result) if r.origin == "LIFT" and r.unit}
    occupied = {o for o in data["occupancy"]}
    assert set(common) == occupied  # vacant units carry none of it
    area = {u["id"]: u["area"] for u in data["units"] if u["id"] in occupied}
    use = {u: float(data["readings"][f"M-{u}"][END]) for u in occupied}
    expected = {
        u: p * use[u] / sum(use.values()) + (1 - p) * area[u] / sum(area.values()) for u in occupied
    }
    total = sum(common.values())
    for u in occupied:
        assert abs(common[u] / total - expected[u]) < 1e-9
