"""Revision 0024: bank lines, payer accounts and credit notes, as the models say, on SQLite
and PostgreSQL; a bank line's key is unique; the revision goes down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cloud.leases.models import BankLine
from cloud.registry.db import alembic_config, upgrade

TABLES = {"bank_lines", "payer_accounts", "credit_notes"}


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names()) & TABLES


def test_revision_0024_adds_bank_lines_payer_accounts_and_credit_notes(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0021")
    assert _tables(engine) == set()
    upgrade(engine, "0024")
    with engine.connect() as conn:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), BankLine.metadata)
            if any(f"'{t}'" in repr(d) for t in TABLES)
        ]
    assert diffs == []
    row = (
        "INSERT INTO bank_lines (key, statement, row, booked_on, cents, payer, payer_account, "
        "reference, serial, status, matched_by, candidates, note, imported_at, imported_by) "
        "VALUES ('serial:S1', 'x', 2, '2026-03-05', 100, '', '', '', 'S1', 'unmatched', '', "
        "'[]', '', '2026-03-05 10:00:00+00', 'admin')"
    )
    with engine.begin() as conn:
        conn.execute(text(row))
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(text(row))  # one line, one key
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0021")
    assert _tables(engine) == set()
    upgrade(engine, "0024")
    assert _tables(engine) == TABLES
    engine.dispose()
