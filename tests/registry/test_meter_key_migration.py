"""Migration 0010: meters keyed by (site, id) on SQLite and PostgreSQL, data kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from cloud.registry.db import make_engine, upgrade


def _fill_0009(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine, "0009")
    with engine.begin() as c:
        c.execute(text("INSERT INTO sites (id, name, timezone) VALUES ('a', 'A', 'UTC')"))
        c.execute(text("INSERT INTO sites (id, name, timezone) VALUES ('b', 'B', 'UTC')"))
        c.execute(
            text(
                "INSERT INTO meters (id, site_id, protocol, address)"
                " VALUES ('MAIN', 'a', '', ''), ('U101', 'a', '', '')"
            )
        )
        c.execute(text("UPDATE meters SET parent_id = 'MAIN' WHERE id = 'U101'"))
        c.execute(
            text(
                "INSERT INTO meter_tree_nodes (id, site_id, kind, name)"
                " VALUES ('n', 'a', 'main', '')"
            )
        )
        c.execute(
            text(
                "INSERT INTO meter_installations (id, meter_id, node_id, bidirectional)"
                " VALUES ('MAIN', 'MAIN', 'n', false)"
            )
        )
        c.execute(
            text(
                "INSERT INTO multiplier_steps (installation_id, effective_from, multiplier)"
                " VALUES ('MAIN', '2026-01-01', 1)"
            )
        )
    engine.dispose()


def _check_after(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO meters (id, site_id, protocol, address, parent_id)"
                " VALUES ('MAIN', 'b', '', '', NULL), ('U101', 'b', '', '', 'MAIN')"
            )
        )
        c.execute(
            text(
                "INSERT INTO meter_installations (id, meter_id, node_id, bidirectional)"
                " VALUES ('B-MAIN', 'MAIN', 'n', false)"
            )
        )
        rows = c.execute(text("SELECT site_id, id, parent_id FROM meters ORDER BY 1, 2")).all()
        steps = c.execute(text("SELECT installation_id FROM multiplier_steps")).all()
    assert [tuple(r) for r in rows] == [
        ("a", "MAIN", None),
        ("a", "U101", "MAIN"),
        ("b", "MAIN", None),
        ("b", "U101", "MAIN"),
    ]
    assert [tuple(r) for r in steps] == [("MAIN",)]
    with pytest.raises(IntegrityError), engine.begin() as c:  # one id twice in one site
        c.execute(
            text("INSERT INTO meters (id, site_id, protocol, address) VALUES ('MAIN', 'b', '', '')")
        )
    with pytest.raises(IntegrityError), engine.begin() as c:  # a parent of another site
        c.execute(
            text(
                "INSERT INTO meters (id, site_id, protocol, address, parent_id)"
                " VALUES ('X', 'b', '', '', 'NOPE')"
            )
        )
    if url.startswith("sqlite"):
        with engine.begin() as c:
            assert c.execute(text("PRAGMA foreign_key_check")).all() == []
            assert c.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    engine.dispose()


def test_meters_rekeyed_by_site_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.sqlite'}"
    _fill_0009(url)
    _check_after(url)


def test_meters_rekeyed_by_site_on_postgresql(fresh_postgres_url: str) -> None:
    _fill_0009(fresh_postgres_url)
    _check_after(fresh_postgres_url)
