"""Revision 0014 on both databases: the old per-envelope filter folds into one row per
gateway key, dead letters gain their size; downgrade and upgrade again."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import text

from cloud.registry.db import alembic_config, make_engine, upgrade


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_0014_folds_seen_envelopes_and_sizes_letters(database, tmp_path, request):
    url = (
        f"sqlite:///{tmp_path / 'r.sqlite'}"
        if database == "sqlite"
        else request.getfixturevalue("fresh_postgres_url")
    )
    engine = make_engine(url)
    upgrade(engine, "0013")
    with engine.begin() as c:
        c.execute(text("INSERT INTO sites (id, name, timezone) VALUES ('s1', 's1', 'UTC')"))
        c.execute(
            text("INSERT INTO gateways (id, site_id, created_at) VALUES ('gw1', 's1', :t)"),
            {"t": "2026-11-01T00:00:00+00:00"},
        )
        c.execute(
            text(
                "INSERT INTO gateway_keys (kid, gateway_id, public_key, created_at)"
                " VALUES ('k1', 'gw1', 'x', :t)"
            ),
            {"t": "2026-11-01T00:00:00+00:00"},
        )
        for seq in (0, 1, 2, 5):
            c.execute(
                text("INSERT INTO seen_envelopes VALUES ('gw1', :s, 1, 3, :t)"),
                {"s": seq, "t": "2026-11-01T00:00:00+00:00"},
            )
        c.execute(
            text(
                "INSERT INTO dead_letters (received_at, topic, reason, detail, payload)"
                " VALUES (:t, 'x', 'malformed', 'd', :p)"
            ),
            {"t": "2026-11-01T00:00:00+00:00", "p": b"abcd"},
        )
    upgrade(engine)
    with engine.connect() as c:
        assert c.execute(
            text("SELECT gateway_id, kid, floor, ranges FROM ingest_streams")
        ).all() == [("gw1", "k1", 6, "[]")]
        assert c.execute(text("SELECT size, digest FROM dead_letters")).all() == [(4, None)]
    cfg = alembic_config(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0013")
    upgrade(engine)
    engine.dispose()
