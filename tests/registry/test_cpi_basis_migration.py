"""Revision 0029: ``cpi_indices.basis`` as the model says, on SQLite and PostgreSQL; a level
stored before reads ``level`` (and gives the same rise); the revision goes down and up."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import sessionmaker

from cloud.leases.models import CpiIndex
from cloud.leases.reference import cpi_series
from cloud.leases.schedule import CpiFigure, cpi_rise
from cloud.registry.db import alembic_config, upgrade


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _columns(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in inspect(conn).get_columns("cpi_indices")}


def test_revision_0029_adds_the_basis_and_old_levels_stay_levels(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0028")
    with engine.begin() as conn:
        for month, level in (("2024-12-01", "100"), ("2025-12-01", "102.5")):
            conn.execute(
                text("INSERT INTO cpi_indices (month, level) VALUES (:m, :l)"),
                {"m": month, "l": level},
            )
    upgrade(engine, "0029")
    with engine.connect() as conn:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), CpiIndex.metadata)
            if "'cpi_indices'" in repr(d)
        ]
        assert diffs == []
    with sessionmaker(engine)() as session:
        series = cpi_series(session)
    assert series[date(2025, 12, 1)] == CpiFigure("level", Decimal("102.5"))
    assert cpi_rise(series, date(2026, 1, 1), 1) == Decimal("0.025")
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0028")
    assert "basis" not in _columns(engine)
    upgrade(engine, "0029")
    assert "basis" in _columns(engine)
    engine.dispose()
