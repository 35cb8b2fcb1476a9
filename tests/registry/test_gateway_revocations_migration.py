"""Revision 0030: ``gateway_revocations`` as the model says, on SQLite and PostgreSQL; keys
revoked before it keep their ``revoked_at`` and have no row; the revision goes down and up
again."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cloud.registry.db import alembic_config, upgrade
from cloud.registry.models import GatewayRevocation


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_revision_0030_adds_gateway_revocations(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0029")
    assert "gateway_revocations" not in _tables(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sites (id, name, timezone) VALUES ('s1', 's1', 'UTC')"))
        conn.execute(
            text(
                "INSERT INTO gateways (id, site_id, created_at) "
                "VALUES ('gw1', 's1', '2026-12-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO gateway_keys (kid, gateway_id, public_key, created_at, revoked_at) "
                "VALUES ('k1', 'gw1', 'pk', '2026-12-01 00:00:00', '2026-12-02 00:00:00')"
            )
        )
    upgrade(engine, "0030")
    with engine.connect() as conn:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), GatewayRevocation.metadata)
            if "'gateway_revocations'" in repr(d)
        ]
        assert diffs == []
        assert conn.execute(text("SELECT count(*) FROM gateway_revocations")).scalar_one() == 0
        assert conn.execute(text("SELECT revoked_at FROM gateway_keys")).scalar_one() is not None
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0029")
    assert "gateway_revocations" not in _tables(engine)
    upgrade(engine, "0030")
    assert "gateway_revocations" in _tables(engine)
    engine.dispose()
