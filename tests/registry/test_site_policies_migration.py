"""Revision 0022: site policy sets and leases' policy overrides, as the models say, on SQLite
and PostgreSQL; one set per site, property type and first day; leases from before have no
overrides; the revision goes down again and up."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from cloud.leases.models import Lease, SitePolicyRow
from cloud.registry.db import alembic_config, upgrade


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _tables(engine: object) -> set[str]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return set(inspect(conn).get_table_names())


def _lease_columns(engine: object) -> set[str]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return {c["name"] for c in inspect(conn).get_columns("leases")}


def _row(day: date) -> SitePolicyRow:
    return SitePolicyRow(
        site_id="park-a",
        property_type="office",
        effective_from=day,
        preset="short",
        fields={"risk_lead_days": 10},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        created_by="sup-a",
    )


def test_revision_0022_adds_site_policies_and_overrides(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0021")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO sites (id, name, timezone) VALUES ('park-a', 'A', 'Asia/Shanghai')")
        )
    upgrade(engine, "0022")
    with engine.connect() as conn:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), Lease.metadata)
            if "'site_policies'" in repr(d) or "'leases'" in repr(d)
        ]
    assert diffs == []
    with sessionmaker(engine).begin() as session:
        session.add(_row(date(2026, 1, 1)))
    with pytest.raises(IntegrityError), sessionmaker(engine).begin() as session:
        session.add(_row(date(2026, 1, 1)))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM site_policies")).scalar_one() == 1
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0021")
    assert "site_policies" not in _tables(engine)
    assert "policy_overrides" not in _lease_columns(engine)
    upgrade(engine, "0022")
    assert "site_policies" in _tables(engine) and "policy_overrides" in _lease_columns(engine)
    engine.dispose()
