"""Site files: a case file without its period's sections is a site file; importing it is
idempotent, refuses bad files whole naming every item, and the stored set-up reads back into
the same case (same input hash) once the period's data is added."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import case_from_data, load_case
from cloud.apportion.configuration import import_site
from cloud.apportion.models import OccupancySegment, TreeNode, Unit
from cloud.apportion.site import CASE_ONLY, SiteFileError, case_data, parse_site
from cloud.apportion.site_export import site_sections, stored_site
from cloud.registry.db import open_registry

CASES = Path(__file__).resolve().parents[1] / "cases"


def clock() -> datetime:
    return datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture()
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    made = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield made
    made.kw["bind"].dispose()


def split(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A case file's sections: (the site file's, the period's)."""
    raw = yaml.safe_load((CASES / f"{name}.yaml").read_text())
    site = {k: v for k, v in raw.items() if k not in CASE_ONLY}
    site.setdefault("site", "site")
    return site, {k: v for k, v in raw.items() if k in CASE_ONLY}


def import_text(sessions: sessionmaker[Session], text: str, by: str = "ops") -> Any:
    with sessions.begin() as s:
        return import_site(s, parse_site(text), by=by, clock=clock)


CASE_NAMES = ["basic", "replacement", "two_part", "move_in", "tiered", "formula", "blend"]


@pytest.mark.parametrize("name", [*CASE_NAMES, "coefficients"])
def test_a_case_file_without_its_period_is_a_site_file_that_round_trips(
    sessions: sessionmaker[Session], name: str
) -> None:
    site, period = split(name)
    original = load_case(CASES / f"{name}.yaml")
    first = import_text(sessions, yaml.safe_dump(site))
    assert first.changed and first.created["node"] == len(site["tree"])
    with sessions() as s:
        stored = site_sections(s, site["site"])
    rebuilt = case_from_data(
        case_data(
            stored,
            period["period"]["start"],
            period["period"]["end"],
            readings=period["readings"],
            bill=period["bill"],
            drivers=period.get("drivers"),
            history=period.get("history"),
        )
    )
    assert rebuilt.input_hash() == original.input_hash()
    # the same file again, and the export re-imported, change nothing
    again = import_text(sessions, yaml.safe_dump(site))
    assert not again.changed and again.unchanged["node"] == len(site["tree"])
    with sessions() as s:
        exported = stored_site(s, site["site"])
    assert not import_text(sessions, yaml.safe_dump(_plain(exported.sections))).changed


def _plain(value: Any) -> Any:
    from cloud.apportion.case.canonical import plain

    return plain(value)


def test_a_changed_file_updates_only_what_changed_and_nothing_is_deleted(
    sessions: sessionmaker[Session],
) -> None:
    site, _ = split("move_in")
    import_text(sessions, yaml.safe_dump(site))
    site["units"][0]["area"] = 65
    site["units"][0]["name"] = "A 座 101"
    site["tariffs"][0]["to"] = date(2026, 6, 1)
    site["tariffs"].append({"id": "flat2", "kind": "flat", "from": date(2026, 6, 1), "price": 0.6})
    report = import_text(sessions, yaml.safe_dump(site, allow_unicode=True))
    assert report.updated == {"unit": 1, "tariff": 1}
    assert report.created == {"tariff": 1}
    with sessions() as s:
        unit = s.get(Unit, "A")
        assert unit is not None and unit.area_m2 == 65 and unit.name == "A 座 101"
    site["units"] = site["units"][1:]
    site["tree"] = [n for n in site["tree"] if n["id"] != "A"]
    site["occupancy"].pop("A")
    site["meters"] = [m for m in site["meters"] if m["id"] != "UA"]
    report = import_text(sessions, yaml.safe_dump(site))
    assert report.not_in_file == {"units": ["A"], "tree": ["A"]}
    with sessions() as s:
        assert s.get(TreeNode, "A") is not None


def _count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["tree"].append({"id": "X", "kind": "unit", "parent": "MAIN"}), "unknown unit"),
        (lambda d: d["tree"][1].update(meter="NOPE"), "'NOPE' is not in meters"),
        (
            lambda d: d["occupancy"]["B"].append({"tenant": "Q", "from": date(2026, 2, 1)}),
            "occupancy",
        ),
        (lambda d: d["units"][0].update(area=-1), "units[0] (A).area"),
        (lambda d: d["tariffs"][0].update({"from": "2026-13-01"}), "tariffs[0] (flat).from"),
        (lambda d: d.update(period={"start": "2026-04-01", "end": "2026-05-01"}), "period"),
        (lambda d: d.update(registers=["total", "water"]), "register 'water' has no quantity"),
    ],
)
def test_bad_site_files_are_refused_whole_naming_the_item(
    sessions: sessionmaker[Session], change: Any, expected: str
) -> None:
    site, _ = split("move_in")
    change(site)
    with pytest.raises(SiteFileError) as refused:
        import_text(sessions, yaml.safe_dump(site))
    assert expected in str(refused.value)
    assert "nothing was stored" in str(refused.value)
    assert _count(sessions, Unit) == 0


def test_every_field_error_is_listed_not_only_the_first() -> None:
    site, _ = split("move_in")
    site["units"][0]["area"] = "wide"
    site["units"][1]["area"] = 0
    site["meters"][0]["multiplier"] = -2
    with pytest.raises(SiteFileError) as refused:
        parse_site(yaml.safe_dump(site))
    text = str(refused.value)
    assert "error(s); nothing was stored" in text
    for item in ("units[0] (A).area", "units[1] (B).area", "meters[0] (M0).multiplier"):
        assert item in text


def test_duplicate_keys_in_a_site_file_are_refused() -> None:
    text = "site: s\nsite: t\nmeters: []\ntree: []\ntariffs: []\n"
    with pytest.raises(Exception, match="appears twice"):
        parse_site(text)


def test_a_stay_overlapping_one_the_lease_ledger_made_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    site, _ = split("move_in")
    import_text(sessions, yaml.safe_dump(site))
    with sessions.begin() as s:  # a lease signed for B from July (as cloud.leases does)
        s.add(OccupancySegment(node_id="B", tenant="LEASE-7", from_=date(2026, 7, 1)))
    with pytest.raises(SiteFileError, match="overlaps the stored stay of LEASE-7"):
        import_text(sessions, yaml.safe_dump(site))


def test_ids_of_another_site_are_refused(sessions: sessionmaker[Session]) -> None:
    site, _ = split("move_in")
    import_text(sessions, yaml.safe_dump(site))
    site["site"] = "other"
    with pytest.raises(SiteFileError, match="'A' belongs to site 'site'"):
        import_text(sessions, yaml.safe_dump(site))
