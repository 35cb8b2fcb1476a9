"""Revision 0026: the recipients of the monthly lease reports, as the model says, on SQLite and
PostgreSQL; one row per site and address; the revision goes down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cloud.leases.models import ReportRecipient
from cloud.registry.db import alembic_config, upgrade


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_revision_0026_adds_report_recipients(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0021")
    assert "report_recipients" not in _tables(engine)
    upgrade(engine, "0026")
    with engine.connect() as conn:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), ReportRecipient.metadata)
            if "report_recipients" in repr(d)
        ]
    assert diffs == []
    row = "('park-a', 'boss@reports.test', '2026-12-07 12:00:00+00:00', 'admin')"
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO report_recipients VALUES {row}"))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(text(f"INSERT INTO report_recipients VALUES {row}"))
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0021")
    assert "report_recipients" not in _tables(engine)
    upgrade(engine, "0026")
    assert "report_recipients" in _tables(engine)
    engine.dispose()
