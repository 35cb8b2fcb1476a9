"""Revision 0019 (decision 0028): staff accounts' building scope and tenants' ID numbers, as
the models say, on SQLite and PostgreSQL; accounts from before act on whole sites, tenants
from before have no ID number; the revision goes down again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.orm import sessionmaker

from cloud.leases.models import Tenant
from cloud.registry.db import alembic_config, upgrade
from cloud.staff.accounts import AccountService, Role, SessionKind
from cloud.staff.models import WebAccount

COLUMNS = {"web_accounts": "buildings", "tenants": "id_number"}
PASSWORD = "correct horse battery"


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def test_revision_0019_adds_building_scope_and_id_numbers(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0017")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO web_accounts (username, password_hash, role, sites, created_at) "
                "VALUES ('fin-old', 'x', 'finance', '[\"park-a\"]', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text("INSERT INTO tenants (id, name, channel, address) VALUES ('T1', 'x', 'email', '')")
        )
    upgrade(engine, "0019")
    models = WebAccount.metadata
    assert Tenant.metadata is models
    with engine.connect() as conn:
        for table, column in COLUMNS.items():
            assert column in {c["name"] for c in inspect(conn).get_columns(table)}
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), models)
            if not (isinstance(d, tuple) and d[0] in ("add_table", "remove_table"))
            and any(f"'{table}'" in repr(d) for table in COLUMNS)
            # columns later revisions add are not this revision's
            and not (d[0] == "add_column" and d[3].name not in COLUMNS.values())
        ]
        assert conn.execute(text("SELECT id_number FROM tenants")).scalar_one() is None
    assert diffs == []
    # an account from before acts on its whole site; a manager made now (on the newest
    # schema, which the account service reads) on one building
    upgrade(engine)
    accounts = AccountService(sessionmaker(engine))
    accounts.create_account("mgr", PASSWORD, Role.MANAGER, buildings=["park-a/A"])
    old = accounts.acting("fin-old")
    assert (old.buildings, old.may_see_unit("park-a", "B")) == (frozenset(), True)
    mgr = accounts.sign_in("mgr", PASSWORD, SessionKind.API).principal
    assert (mgr.sites, mgr.buildings) == (frozenset({"park-a"}), frozenset({"park-a/A"}))
    assert mgr.may_see_unit("park-a", "A") and not mgr.may_see_unit("park-a", "B")
    # down to 0017 and up again
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0017")
    with engine.connect() as conn:
        assert "buildings" not in {c["name"] for c in inspect(conn).get_columns("web_accounts")}
    upgrade(engine, "0019")
    engine.dispose()
