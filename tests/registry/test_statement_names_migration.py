"""Revision 0017 (decision 0021): display names of meters and tenants and the name a tenant
typed when confirming, as the models say, on SQLite and PostgreSQL; rows from before keep an
empty name (the id is shown)."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cloud.apportion.models import MeterInstallation, OccupancySegment, StatementConfirmation
from cloud.registry.db import upgrade

COLUMNS = {
    "meter_installations": "name",
    "occupancy_segments": "tenant_name",
    "statement_confirmations": "confirmed_name",
}


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def test_revision_0017_adds_the_names_as_the_models_say(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0014")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO sites (id, name, timezone) VALUES ('s1', 's1', 'Asia/Shanghai')")
        )
        conn.execute(
            text(
                "INSERT INTO meter_tree_nodes (id, site_id, kind, name) "
                "VALUES ('N1', 's1', 'main', '')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO meter_installations (id, meter_id, node_id, bidirectional) "
                "VALUES ('M1', 'M1', 'N1', false)"
            )
        )
    upgrade(engine, "0017")
    models = MeterInstallation.metadata  # the one Base's, with every table it refers to
    assert OccupancySegment.metadata is models and StatementConfirmation.metadata is models
    with engine.connect() as conn:
        for table, column in COLUMNS.items():
            assert column in {c["name"] for c in inspect(conn).get_columns(table)}
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), models)
            if not (isinstance(d, tuple) and d[0] in ("add_table", "remove_table"))
            and any(f"'{table}'" in repr(d) for table in COLUMNS)
        ]
        assert conn.execute(text("SELECT name FROM meter_installations")).scalar_one() == ""
    assert diffs == []
    upgrade(engine, "0017")  # idempotent at its own revision
    engine.dispose()
