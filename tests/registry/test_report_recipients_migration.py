"""Revisions 0026 and 0031: the recipients of the monthly lease reports and their language, as
the model says, on SQLite and PostgreSQL; one row per site and address; each revision goes
down and up again."""

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
    # the model's only column beyond revision 0026 is 0031's language
    assert [(d[0], d[3].name) for d in diffs] == [("add_column", "language")]
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


def test_revision_0031_gives_each_recipient_a_language(registry_url: str) -> None:
    """A recipient stored before revision 0031 reads Chinese after it; the column is as the
    model says; down and up again."""
    engine = create_engine(registry_url)
    upgrade(engine, "0026")
    row = "('park-a', 'boss@reports.test', '2026-12-07 12:00:00+00:00', 'admin')"
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO report_recipients VALUES {row}"))
    upgrade(engine, "0031")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT language FROM report_recipients")).scalar() == "zh-CN"
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), ReportRecipient.metadata)
            if "report_recipients" in repr(d)
        ]
    assert diffs == []
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0031-1")
    with engine.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("report_recipients")}
    assert "language" not in columns and "address" in columns
    upgrade(engine, "0031")
    engine.dispose()
