"""A realistic park for the print tests: time-of-use registers (尖峰平谷), two buildings on
branch meters, a CT meter (20:1), a lift and a water pump on common meters, a vacant unit, a
tenant moving out and another moving in mid-month, line losses above the cap — so a
statement carries many lines (own use, common shares and losses per register)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

SITE = "xingchen-park"
REGISTERS = ["T1", "T2", "T3", "T4"]
PRICES = {
    "T1": Decimal("1.20"),
    "T2": Decimal("1.00"),
    "T3": Decimal("0.60"),
    "T4": Decimal("0.30"),
}
#: the property company printed on the statements
PROPERTY = {
    "company": "星辰物业管理有限公司",
    "address": "上海市浦东新区星辰路 88 号",
    "phone": "021-5555 0188",
    "due_days": 10,
}
#: unit → (building branch, area m², meter, CT ratio, monthly kWh per register at ratio 1)
UNITS: dict[str, tuple[str, int, str, int, tuple[int, int, int, int]]] = {
    "A101": ("BA", 120, "UA1", 1, (40, 160, 220, 90)),
    "A102": ("BA", 300, "UA2", 20, (12, 40, 55, 21)),  # × 20 = 240, 800, 1100, 420
    "A103": ("BA", 85, "UA3", 1, (18, 75, 96, 40)),
    "A104": ("BA", 95, "UA4", 1, (20, 88, 101, 47)),
    "B101": ("BB", 150, "UB1", 1, (55, 210, 260, 130)),
    "B102": ("BB", 60, "UB2", 1, (10, 44, 52, 25)),
    "B103": ("BB", 75, "UB3", 1, (16, 60, 70, 33)),
    "B104": ("BB", 110, "UB4", 1, (1, 3, 4, 2)),  # vacant
}
TENANTS = {
    "A101": [{"tenant": "XINGCHEN-TECH", "from": date(2025, 1, 1)}],
    "A102": [{"tenant": "LANJING-CONSULT", "from": date(2025, 3, 1)}],
    "A103": [  # one moves out on the 12th, another moves in on the 20th
        {"tenant": "QINGHE-FOOD", "from": date(2025, 1, 1), "to": date(2026, 4, 12)},
        {"tenant": "YUANSHAN-DESIGN", "from": date(2026, 4, 20)},
    ],
    "A104": [{"tenant": "BAILU-MEDIA", "from": date(2025, 6, 1)}],
    "B101": [{"tenant": "HAIYUN-LOGISTICS", "from": date(2025, 1, 1)}],
    "B102": [{"tenant": "SONGSHI-TEA", "from": date(2025, 1, 1)}],
    "B103": [{"tenant": "JINGHU-LAW", "from": date(2025, 9, 1)}],
}
COMMONS = {"LIFT": ("MAIN", "CL", (30, 120, 140, 60)), "PUMP": ("BB", "CP", (12, 40, 45, 30))}


def _values(start: dict[str, float], used: tuple[float, ...]) -> dict[str, float]:
    return {r: round(start[r] + u, 2) for r, u in zip(REGISTERS, used, strict=True)}


def park_sections() -> dict[str, Any]:
    """The park's site file sections (with the property section)."""
    meters = [{"id": "M0"}, {"id": "MBA"}, {"id": "MBB"}, {"id": "CL"}, {"id": "CP"}]
    meters += [{"id": m, "multiplier": ct} for _, _, m, ct, _ in UNITS.values()]
    tree: list[dict[str, Any]] = [
        {"id": "MAIN", "kind": "main", "meter": "M0", "rule": {"basis": "usage", "loss_cap": 0.05}},
        {
            "id": "BA",
            "kind": "branch",
            "parent": "MAIN",
            "meter": "MBA",
            "rule": {"basis": "usage"},
        },
        {
            "id": "BB",
            "kind": "branch",
            "parent": "MAIN",
            "meter": "MBB",
            "rule": {"basis": "usage"},
        },
        {
            "id": "LIFT",
            "kind": "common",
            "parent": "MAIN",
            "meter": "CL",
            "rule": {"basis": "area", "common_type": "mandatory"},
        },
        {
            "id": "PUMP",
            "kind": "common",
            "parent": "BB",
            "meter": "CP",
            "rule": {"basis": "usage", "common_type": "mandatory"},
        },
    ]
    tree += [
        {"id": u, "kind": "unit", "parent": b, "meter": m} for u, (b, _, m, _, _) in UNITS.items()
    ]
    return {
        "site": SITE,
        "name": "星辰科技园",
        "timezone": "Asia/Shanghai",
        "registers": REGISTERS,
        "units": [
            {"id": u, "area": area, "building": u[0], "floor": int(u[1])}
            for u, (_, area, _, _, _) in UNITS.items()
        ],
        "meters": meters,
        "tree": tree,
        "occupancy": TENANTS,
        "tariffs": [
            {"id": "tou-2025", "kind": "tou", "from": date(2025, 1, 1), "prices": dict(PRICES)}
        ],
        "property": PROPERTY,
    }


def park_case(start: date = date(2026, 4, 1), end: date = date(2026, 5, 1)) -> dict[str, Any]:
    """The park's case for [start, end): readings that add up (each upstream meter reads its
    children plus 3 % loss on a branch and 7 % on the main, above the 5 % cap) and the bill."""
    zero = dict.fromkeys(REGISTERS, 1000.0)
    readings: dict[str, dict[date, dict[str, float]]] = {}
    branch_use = {"BA": [0.0] * 4, "BB": [0.0] * 4}
    main_use = [0.0] * 4
    for _, (branch, _, meter, ct, used) in UNITS.items():
        readings[meter] = {start: zero, end: _values(zero, used)}
        for i, u in enumerate(used):
            branch_use[branch][i] += u * ct
    for parent, meter, used in COMMONS.values():
        readings[meter] = {start: zero, end: _values(zero, used)}
        target = main_use if parent == "MAIN" else branch_use[parent]
        for i, u in enumerate(used):
            target[i] += u
    for branch, meter in (("BA", "MBA"), ("BB", "MBB")):
        used = tuple(round(u * 1.03, 2) for u in branch_use[branch])
        readings[meter] = {start: zero, end: _values(zero, used)}
        for i, u in enumerate(used):
            main_use[i] += u
    main = tuple(round(u * 1.07, 2) for u in main_use)
    readings["M0"] = {start: zero, end: _values(zero, main)}
    bill = {
        r: str((Decimal(str(u)) * PRICES[r]).quantize(Decimal("0.01")))
        for r, u in zip(REGISTERS, main, strict=True)
    }
    data = {k: v for k, v in park_sections().items() if k != "property"}
    data.update(
        period={"start": start, "end": end},
        readings={m: {d.isoformat(): v for d, v in days.items()} for m, days in readings.items()},
        bill={"invoice": f"SGCC-{start:%Y-%m}-XC", "amounts": bill},
    )
    return data
