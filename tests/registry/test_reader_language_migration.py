"""Revision 0027: the notice language of tenants and staff and a task note's code and values,
as the models say, on SQLite and PostgreSQL; rows from before read Chinese and an empty code;
the revision goes down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cloud.leases.models import Staff
from cloud.registry.db import alembic_config, upgrade

TABLES = ("tenants", "staff", "lease_tasks")


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _columns(engine: sa.Engine, table: str) -> set[str]:
    with engine.connect() as conn:
        return {c["name"] for c in inspect(conn).get_columns(table)}


def test_revision_0027_adds_languages_and_task_note_codes(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0026")
    assert "language" not in _columns(engine, "staff")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO staff (id, name, channel, address) VALUES ('chen', '陈', 'email', '')"
            )
        )
    upgrade(engine, "0027")
    with engine.connect() as conn:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), Staff.metadata)
            if any(f"'{t}'" in repr(d) for t in TABLES)
        ]
        assert diffs == []
        assert conn.execute(text("SELECT language FROM staff")).scalar_one() == "zh-CN"
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0026")
    assert "language" not in _columns(engine, "tenants")
    assert "note_code" not in _columns(engine, "lease_tasks")
    upgrade(engine, "0027")
    assert {"note_code", "note_params"} <= _columns(engine, "lease_tasks")
    engine.dispose()
