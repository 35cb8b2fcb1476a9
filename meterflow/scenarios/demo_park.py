"""The demo's small park: a meter tree whose simulated meters agree with each other, and its
site file.

```
MAIN  M01  main meter (the utility's), rule: usage, loss cap 5 %   loss 2 %
├─ B1    M02  branch of building A, rule: area                     loss 1 %
│  ├─ A101  M03  unit, 星辰科技
│  ├─ A102  M04  unit behind a 20 : 1 current transformer (CT meter), 蓝鲸咨询
│  └─ A103  M05  unit, vacant (its use is the landlord's)
├─ LIFT  M06  common: the lifts, mandatory, shared by area
├─ B101  M07  unit, 青禾餐饮
└─ B102  M08  unit, 远山设计
```

Each upstream meter's load is the sum of the loads below it plus its line loss
(:class:`simulators.load.FeederLoad`), so residuals are real and positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from simulators.load import FeederLoad, LoadModel, SecondaryLoad

SITE = "demo-park"
SITE_NAME = "演示园区 Demo Park"
GATEWAY = "gw-01"
#: The catalogue price the demo's utility bill is computed at [CNY/kWh].
PRICE = "0.85"
#: The CT ratio of the CT meter.
CT_RATIO = 20


@dataclass(frozen=True)
class ParkMeter:
    """A meter of the park: its id, DL/T645 address, tree node, kind, parent node and CT."""

    id: str
    address: str
    node: str
    kind: str
    parent: str | None
    ct: int = 1


METERS = [
    ParkMeter("M01", "000000000001", "MAIN", "main", None),
    ParkMeter("M02", "000000000002", "B1", "branch", "MAIN"),
    ParkMeter("M03", "000000000003", "A101", "unit", "B1"),
    ParkMeter("M04", "000000000004", "A102", "unit", "B1", ct=CT_RATIO),
    ParkMeter("M05", "000000000005", "A103", "unit", "B1"),
    ParkMeter("M06", "000000000006", "LIFT", "common", "MAIN"),
    ParkMeter("M07", "000000000007", "B101", "unit", "MAIN"),
    ParkMeter("M08", "000000000008", "B102", "unit", "MAIN"),
]
#: Mean primary load of the meters at the bottom of the tree [kW].
_LEAF_KW = {"M03": 3.0, "M04": 24.0, "M05": 0.4, "M06": 2.5, "M07": 6.0, "M08": 2.0}
UNITS = {
    # unit: (display name, building, floor, area m², tenant, tenant's display name)
    "A101": ("A座101", "A", "1", 120, "XINGCHEN", "星辰科技"),
    "A102": ("A座102", "A", "1", 260, "LANJING", "蓝鲸咨询"),
    "A103": ("A座103", "A", "1", 90, None, None),
    "B101": ("B座101", "B", "1", 180, "QINGHE", "青禾餐饮"),
    "B102": ("B座102", "B", "1", 75, "YUANSHAN", "远山设计"),
}


def loads(epoch: Any) -> dict[str, LoadModel]:
    """Meter id → what its registers count (primary kWh, or secondary for the CT meter)."""
    primary = {
        meter: LoadModel(kw, seed, epoch=epoch)
        for seed, (meter, kw) in enumerate(sorted(_LEAF_KW.items()), start=3)
    }
    branch = FeederLoad([primary[m] for m in ("M03", "M04", "M05")], 0.01, 0.0, 2, epoch=epoch)
    main = FeederLoad(
        [branch, *(primary[m] for m in ("M06", "M07", "M08"))], 0.02, 0.0, 1, epoch=epoch
    )
    out: dict[str, LoadModel] = {"M01": main, "M02": branch, **primary}
    out["M04"] = SecondaryLoad(primary["M04"], CT_RATIO)
    return out


def site_file(since: date) -> dict[str, Any]:
    """The park's site file (the sections of a case file without the period's data)."""
    tree: list[dict[str, Any]] = []
    for m in METERS:
        node: dict[str, Any] = {"id": m.node, "kind": m.kind, "meter": m.id}
        if m.parent:
            node["parent"] = m.parent
        if m.node in UNITS:
            node["name"] = UNITS[m.node][0]
        tree.append(node)
    names = {"MAIN": "总表", "B1": "A座分表", "LIFT": "电梯"}
    rules = {
        "MAIN": {"basis": "usage", "loss_cap": "0.05"},
        "B1": {"basis": "area"},
        "LIFT": {"basis": "area", "common_type": "mandatory"},
    }
    for node in tree:
        node.setdefault("name", names.get(node["id"], ""))
        if node["id"] in rules:
            node["rule"] = rules[node["id"]]
    # a meter is named after its node: 总表 stays 总表, A座101 has the A座101电表
    meter_names = {
        node["id"]: node["name"] if node["name"].endswith("表") else f"{node['name']}电表"
        for node in tree
        if node["name"]
    }
    return {
        "site": SITE,
        "name": SITE_NAME,
        "timezone": "Asia/Shanghai",
        "registers": ["total"],
        "units": [
            {"id": u, "name": n, "building": b, "floor": f, "area": a}
            for u, (n, b, f, a, _t, _tn) in UNITS.items()
        ],
        "meters": [
            {
                "id": m.id,
                "name": meter_names.get(m.node, ""),
                **({"multiplier": m.ct} if m.ct != 1 else {}),
            }
            for m in METERS
        ],
        "tree": tree,
        "occupancy": {
            u: [{"tenant": t, "name": tn, "from": since}]
            for u, (_n, _b, _f, _a, t, tn) in UNITS.items()
            if t is not None
        },
        "tariffs": [{"id": "flat-2026", "kind": "flat", "from": date(2026, 1, 1), "price": PRICE}],
    }
