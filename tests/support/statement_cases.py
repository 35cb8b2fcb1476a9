"""Cases behind the tenant statement tests (decision 0021): the case files of tests/cases
with display names and the twists a statement must explain, each on its own site.

- ``park-t`` (星辰科技园, tou.yaml): four TOU registers (尖峰平谷), unit A's meter on a 20:1
  CT (readings ÷ 20, so the same kWh), a lift on a common meter shared by area, and a bill
  whose 平 (T3) amount is below the catalogue's (0.5625 applied for 0.60 listed).
- ``park-m`` (move_in.yaml): X moves out of A on 04-11 with no reading that day (the end
  reading is interpolated), Y moves in on 04-16 (a reading that day).
- ``park-e`` (gaps.yaml): unit A's meter stops reading on 04-21; 40 kWh estimated from its
  history (the estimate limit raised so that the run posts).
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import case_from_data
from cloud.apportion.runs import approve_run, create_run, post_run, review_run

CASES = Path(__file__).parents[1] / "cases"


def _load(name: str) -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((CASES / f"{name}.yaml").read_text()))


def tou_case() -> dict[str, Any]:
    data = _load("tou")
    data.update(site="park-t", name="星辰科技园")
    data["units"] = [
        {"id": "A", "area": 60, "name": "A101 星辰科技"},
        {"id": "B", "area": 40, "name": "B201 云帆设计"},
    ]
    data["meters"] = [
        {"id": "M0", "name": "总表"},
        {"id": "UA", "name": "A101 电表", "multiplier": 20},
        {"id": "UB", "name": "B201 电表"},
        {"id": "C1", "name": "电梯电表"},
    ]
    data["tree"] = [
        {
            "id": "MAIN",
            "kind": "main",
            "meter": "M0",
            "rule": {"basis": "usage"},
            "name": "总配电室",
        },
        {"id": "A", "kind": "unit", "parent": "MAIN", "meter": "UA"},
        {"id": "B", "kind": "unit", "parent": "MAIN", "meter": "UB"},
        {
            "id": "LIFT",
            "kind": "common",
            "parent": "MAIN",
            "meter": "C1",
            "rule": {"basis": "area"},
            "name": "电梯",
        },
    ]
    data["occupancy"] = {
        "A": [{"tenant": "TA", "from": "2026-04-01", "name": "星辰科技有限公司"}],
        "B": [{"tenant": "TB", "from": "2026-04-01", "name": "云帆设计工作室"}],
    }
    ua = data["readings"]["UA"]
    for day, values in ua.items():
        ua[day] = {k: round(v / 20, 2) for k, v in values.items()}
    data["readings"]["C1"] = {
        "2026-04-01": {"T1": 0.0, "T2": 0.0, "T3": 0.0, "T4": 0.0},
        "2026-05-01": {"T1": 5.0, "T2": 10.0, "T3": 15.0, "T4": 20.0},
    }
    data["bill"]["amounts"]["T3"] = 168.75  # 300 kWh at 0.5625, not the catalogue's 0.60
    return data


def move_case() -> dict[str, Any]:
    data = _load("move_in")
    data.update(site="park-m", name="云栖园区")
    data["units"] = [
        {"id": "A", "area": 60, "name": "A302"},
        {"id": "B", "area": 40, "name": "B204"},
    ]
    data["occupancy"]["A"][0]["name"] = "旧邻贸易"
    data["occupancy"]["A"][1]["name"] = "新禾咨询"
    del data["readings"]["UA"][date(2026, 4, 11)]  # X moves out on a day nobody read the meter
    return data


def estimate_case() -> dict[str, Any]:
    data = _load("gaps")
    data.update(site="park-e")
    data["tree"][0]["rule"]["estimate_limit"] = 0.5
    return data


def seed_statement_cases(sessions: sessionmaker[Session], key: Ed25519PrivateKey) -> dict[str, str]:
    """Post each case above (four eyes as the seeded park); the posted run by site."""
    out = {}
    with sessions.begin() as s:
        for data in (tou_case(), move_case(), estimate_case()):
            run = create_run(s, case_from_data(data), by="seed")
            review_run(s, run.id, by="seed-reviewer")
            approve_run(s, run.id, by="seed-approver")
            post_run(s, run.id, by="seed", key=key)
            out[data["site"]] = run.id
    return out
