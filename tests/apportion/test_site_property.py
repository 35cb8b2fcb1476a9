"""The site file's optional ``property`` section (the property company printed on each
statement): checked, stored, exported and re-imported unchanged; kept out of the case (a
run's input hash does not change with it); a site file without it stays as it was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from cloud.apportion.case.loading import load_case
from cloud.apportion.configuration import import_site
from cloud.apportion.models import SiteSettings
from cloud.apportion.site import (
    CASE_ONLY,
    DEFAULT_DUE_DAYS,
    SiteFileError,
    dump_site,
    load_case_for,
    parse_site,
)
from cloud.apportion.site_export import site_sections, stored_site
from cloud.registry.db import open_registry

CASES = Path(__file__).resolve().parents[1] / "cases"
PROPERTY = {
    "company": "星辰物业管理有限公司",
    "address": "上海市浦东新区星辰路 88 号",
    "phone": "021-5555 0188",
    "due_days": 10,
}


@pytest.fixture()
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    made = open_registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    yield made
    made.kw["bind"].dispose()


def basic_site(**extra: Any) -> dict[str, Any]:
    raw = yaml.safe_load((CASES / "basic.yaml").read_text())
    return {**{k: v for k, v in raw.items() if k not in CASE_ONLY}, **extra}


def _import(sessions: sessionmaker[Session], site: dict[str, Any]) -> Any:
    text = dump_site(site)
    with sessions.begin() as s:
        return import_site(
            s, parse_site(text), by="ops", clock=lambda: datetime(2026, 12, 1, tzinfo=UTC)
        )


def test_property_is_stored_exported_and_reimported_unchanged(
    sessions: sessionmaker[Session],
) -> None:
    site = basic_site(property=PROPERTY)
    assert _import(sessions, site).changed
    with sessions() as s:
        settings = s.get(SiteSettings, site["site"])
        assert settings is not None and settings.property == PROPERTY
        exported = site_sections(s, site["site"])
    assert exported["property"] == PROPERTY
    assert not _import(sessions, exported).changed
    # a changed phone is a changed setting
    report = _import(sessions, basic_site(property={**PROPERTY, "phone": "021-1234 5678"}))
    assert report.updated == {"settings": 1}


def test_due_days_default_and_missing_section(sessions: sessionmaker[Session]) -> None:
    parsed = parse_site(yaml.safe_dump(basic_site(property={"company": "甲物业"})))
    assert parsed.schema.property is not None
    assert parsed.schema.property.due_days == DEFAULT_DUE_DAYS == 15
    site = basic_site()
    _import(sessions, site)
    with sessions() as s:
        assert "property" not in site_sections(s, site["site"])


def test_property_stays_out_of_the_case() -> None:
    raw = yaml.safe_load((CASES / "basic.yaml").read_text())
    original = load_case(CASES / "basic.yaml")
    with_property = parse_site(yaml.safe_dump(basic_site(property=PROPERTY), allow_unicode=True))
    case = load_case_for(
        with_property,
        raw["period"]["start"],
        raw["period"]["end"],
        readings=raw["readings"],
        bill=raw["bill"],
    )
    assert case.input_hash() == original.input_hash()


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"company": "x", "fax": "1"}, "property.fax"),
        ({"due_days": -1}, "property.due_days"),
        ({"due_days": 400}, "property.due_days"),
        ({"phone": "1" * 65}, "property.phone"),
    ],
)
def test_bad_property_is_refused_naming_the_field(section: dict[str, Any], expected: str) -> None:
    with pytest.raises(SiteFileError, match=expected.replace(".", r"\.")):
        parse_site(yaml.safe_dump(basic_site(property=section)))


def test_stored_site_checks_with_property(sessions: sessionmaker[Session]) -> None:
    site = basic_site(property=PROPERTY)
    _import(sessions, site)
    with sessions() as s:
        assert stored_site(s, site["site"]).schema.property is not None
