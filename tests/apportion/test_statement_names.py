"""Display names from the site file (decision 0021): meters and tenants may carry a ``name``
as units and tree nodes do; they are stored on import, exported again and end on the
statement; a site without them keeps the input hash it had before they existed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import case_from_data, load_case
from cloud.apportion.configuration import import_site
from cloud.apportion.engine import apportion
from cloud.apportion.site import CASE_ONLY, case_data, parse_site
from cloud.apportion.site_export import site_sections
from cloud.apportion.statement import build_statements
from cloud.registry.db import open_registry
from tests.support.statement_cases import tou_case

CASES = Path(__file__).parents[1] / "cases"


@pytest.fixture()
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    made = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield made
    made.kw["bind"].dispose()


def test_names_survive_import_and_export_and_reach_the_statement(
    sessions: sessionmaker[Session],
) -> None:
    raw = tou_case()
    site = {k: v for k, v in raw.items() if k not in CASE_ONLY}
    with sessions.begin() as s:
        import_site(
            s,
            parse_site(yaml.safe_dump(site, allow_unicode=True)),
            by="ops",
            clock=lambda: datetime(2026, 12, 1, tzinfo=UTC),
        )
    with sessions() as s:
        stored = site_sections(s, "park-t")
    assert {m["id"]: m.get("name") for m in stored["meters"]}["UA"] == "A101 电表"
    assert stored["occupancy"]["A"][0]["name"] == "星辰科技有限公司"
    case = case_from_data(
        case_data(
            stored,
            raw["period"]["start"],
            raw["period"]["end"],
            readings=raw["readings"],
            bill=raw["bill"],
        )
    )
    doc = next(
        d for d in build_statements(case, apportion(case.to_engine_inputs())) if d["party"] == "TA"
    )
    assert doc["site_name"] == "星辰科技园" and doc["party_name"] == "星辰科技有限公司"
    assert doc["unit"]["name"] == "A101 星辰科技" and doc["meters"][0]["name"] == "A101 电表"
    assert doc["nodes"][0]["name"] == "总配电室"
    assert {x["origin_name"] for x in doc["lines"] if x["origin"] == "LIFT"} == {"电梯"}


def test_a_case_without_the_new_names_keeps_its_input_hash() -> None:
    # the hash of basic.yaml before meters and tenants could carry a name (main at 6751a40)
    assert load_case(CASES / "basic.yaml").input_hash() == (
        "24c0bccb9ccbea33573b33e047696eeec94e99c477b95899417fb425e0f712f6"
    )
    plain = yaml.safe_load((CASES / "basic.yaml").read_text())
    named = yaml.safe_load((CASES / "basic.yaml").read_text())
    named["meters"][1]["name"] = "A101 电表"
    assert case_from_data(plain).input_hash() != case_from_data(named).input_hash()
    assert "name" not in case_from_data(plain).canonical()["meters"][0]
