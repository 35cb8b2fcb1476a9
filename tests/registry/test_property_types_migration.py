"""Revision 0021: units' property type, as the model says, on SQLite and PostgreSQL; units
profiled before are residential; an unknown type is refused; the revision goes down again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import sessionmaker

from cloud.leases.models import UnitProfile
from cloud.leases.reference import set_unit_profile
from cloud.registry.db import alembic_config, upgrade


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _columns(engine: object) -> set[str]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return {c["name"] for c in inspect(conn).get_columns("unit_profiles")}


def test_revision_0021_adds_property_types(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0020")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO sites (id, name, timezone) VALUES ('park-a', 'A', 'Asia/Shanghai')")
        )
        conn.execute(
            text(
                "INSERT INTO units (id, site_id, area_m2, building, floor, name) "
                "VALUES ('U1', 'park-a', 50, 'A', '1', 'A-101'), "
                "('U2', 'park-a', 80, 'A', '1', 'A-102')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO unit_profiles (unit_id, unit_type, rentable, asking_cents) "
                "VALUES ('U1', 'studio', true, 100)"
            )
        )
    upgrade(engine, "0021")
    with engine.connect() as conn:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), UnitProfile.metadata)
            if "'unit_profiles'" in repr(d)
        ]
        assert conn.execute(text("SELECT property_type FROM unit_profiles")).scalar_one() == (
            "residential"
        )
    assert diffs == []
    with sessionmaker(engine).begin() as session:
        set_unit_profile(session, "U2", "shop", property_type="retail")
        with pytest.raises(ValueError, match="expected one of residential, office, retail"):
            set_unit_profile(session, "U1", "studio", property_type="castle")
    with engine.connect() as conn:
        assert conn.execute(
            text("SELECT property_type FROM unit_profiles WHERE unit_id = 'U2'")
        ).scalar_one() == ("retail")
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0020")
    assert "property_type" not in _columns(engine)
    upgrade(engine, "0021")
    assert "property_type" in _columns(engine)
    engine.dispose()
