"""Revision 0025: web accounts' staff link and renewal offers' approval and states, as the
models say, on SQLite and PostgreSQL; offers made before keep their meaning (open →
to_renew, awaiting approval when flagged; accepted → signed); the revision goes down again
and back up."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cloud.leases.models import RenewalOffer
from cloud.registry.db import alembic_config, upgrade

TABLES = ("'web_accounts'", "'renewal_offers'", "'renewal_offer_steps'")


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _columns(engine: object, table: str) -> set[str]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return {c["name"] for c in inspect(conn).get_columns(table)}


OFFER = (
    "INSERT INTO renewal_offers (lease_id, made_on, by, current_cents, suggested_cents, "
    "band_low_cents, band_high_cents, offered_cents, flagged, flag_reason, status) VALUES "
    "('L1', '2026-10-01', 'm1', 100, 104, 103, 105, {cents}, {flagged}, '', '{status}')"
)


def test_revision_0025_adds_the_staff_link_and_offer_states(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0021")
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO sites (id, name, timezone) VALUES ('park-a', 'A', 'Asia/Shanghai')")
        )
        conn.execute(
            text(
                "INSERT INTO units (id, site_id, area_m2, building, floor, name) "
                "VALUES ('U1', 'park-a', 50, 'A', '1', 'A-101')"
            )
        )
        conn.execute(
            text("INSERT INTO tenants (id, name, channel, address) VALUES ('T1', 'x', 'email', '')")
        )
        conn.execute(
            text("INSERT INTO staff (id, name, channel, address) VALUES ('m1', 'y', 'email', '')")
        )
        conn.execute(
            text(
                "INSERT INTO leases (id, tenant_id, unit_id, manager_id, kind, status, start_on, "
                "end_on, cycle_months, due_days, auto_renew, renewal_term_months, deposit_cents, "
                "schedule, created_at) VALUES ('L1', 'T1', 'U1', 'm1', 'standard', 'active', "
                "'2026-01-01', '2027-01-01', 1, 10, false, 12, 0, '{}', '2025-12-01 00:00:00')"
            )
        )
        for cents, flagged, status in (
            (104, "false", "open"),
            (200, "true", "open"),
            (104, "false", "accepted"),
        ):
            conn.execute(text(OFFER.format(cents=cents, flagged=flagged, status=status)))
    upgrade(engine, "0025")
    with engine.connect() as conn:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), RenewalOffer.metadata)
            if any(t in repr(d) for t in TABLES)
        ]
        offers = conn.execute(
            text("SELECT offered_cents, status, approval FROM renewal_offers ORDER BY id")
        ).all()
    assert diffs == []
    assert [tuple(r) for r in offers] == [
        (104, "to_renew", "none"),
        (200, "to_renew", "pending"),
        (104, "signed", "none"),
    ]
    assert "staff_id" in _columns(engine, "web_accounts")
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0021")
    assert "staff_id" not in _columns(engine, "web_accounts")
    assert "approval" not in _columns(engine, "renewal_offers")
    with engine.connect() as conn:
        statuses = conn.execute(text("SELECT status FROM renewal_offers ORDER BY id")).scalars()
        assert list(statuses) == ["open", "open", "accepted"]
    upgrade(engine, "0025")
    assert "renewal_offer_steps" in inspect(engine).get_table_names()
    engine.dispose()
