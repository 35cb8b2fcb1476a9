"""Revision 0028: the deposit evidence table and refunds' payment references, as the models
say, on SQLite and PostgreSQL; a refund recorded before keeps its values (no reference);
the revision goes down again (the table and column gone, the refund intact) and back up."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from cloud.leases.models import DepositRefund
from cloud.registry.db import alembic_config, upgrade

TABLES = ("'deposit_evidence'", "'deposit_refunds'")


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


def _columns(engine: object, table: str) -> set[str]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return {c["name"] for c in inspect(conn).get_columns(table)}


SEED = (
    "INSERT INTO sites (id, name, timezone) VALUES ('park-a', 'A', 'Asia/Shanghai')",
    "INSERT INTO units (id, site_id, area_m2, building, floor, name) "
    "VALUES ('U1', 'park-a', 50, 'A', '1', 'A-101')",
    "INSERT INTO tenants (id, name, channel, address) VALUES ('T1', 'x', 'email', '')",
    "INSERT INTO staff (id, name, channel, address) VALUES ('m1', 'y', 'email', '')",
    "INSERT INTO leases (id, tenant_id, unit_id, manager_id, kind, status, start_on, end_on, "
    "cycle_months, due_days, auto_renew, renewal_term_months, deposit_cents, schedule, "
    "created_at) VALUES ('L1', 'T1', 'U1', 'm1', 'standard', 'terminated', '2026-01-01', "
    "'2027-01-01', 1, 10, false, 12, 800000, '{}', '2025-12-01 00:00:00')",
    "INSERT INTO deposit_refunds (lease_id, state, deposit_cents, requested_at, requested_by, "
    "deductions_cents, shortfall_cents) VALUES ('L1', 'requested', 800000, "
    "'2026-07-01 02:00:00', 'm1', 0, 0)",
)


def test_revision_0028_adds_evidence_and_payment_references(registry_url: str) -> None:
    engine = create_engine(registry_url)
    upgrade(engine, "0027")
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(text(statement))
    assert "deposit_evidence" not in inspect(engine).get_table_names()
    upgrade(engine, "0028")
    with engine.connect() as conn:
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), DepositRefund.metadata)
            if any(t in repr(d) for t in TABLES)
            and "arrears_cents" not in repr(d)  # revision 0032's (below)
        ]
        kept = conn.execute(
            text("SELECT lease_id, state, deposit_cents, payment_ref FROM deposit_refunds")
        ).all()
    assert diffs == []
    assert [tuple(r) for r in kept] == [("L1", "requested", 800000, None)]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO deposit_evidence (sha256, content_type, size, content, uploaded_at, "
                "uploaded_by) VALUES (:h, 'image/png', 3, :c, '2026-07-01 02:00:00', 'm1')"
            ),
            {"h": "ab" * 32, "c": b"\x89PN"},
        )
        conn.execute(text("UPDATE deposit_refunds SET payment_ref = 'BOC-1'"))
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0027")
    assert "deposit_evidence" not in inspect(engine).get_table_names()
    assert "payment_ref" not in _columns(engine, "deposit_refunds")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT state FROM deposit_refunds")).scalars().all() == [
            "requested"
        ]
    upgrade(engine, "0028")
    assert "deposit_evidence" in inspect(engine).get_table_names()
    assert "payment_ref" in _columns(engine, "deposit_refunds")
    engine.dispose()


def test_revision_0032_keeps_what_a_deposit_paid_of_unpaid_invoices(registry_url: str) -> None:
    """A refund stored before revision 0032 reads 0 paid of unpaid invoices; down and up."""
    engine = create_engine(registry_url)
    upgrade(engine, "0027")
    with engine.begin() as conn:
        for statement in SEED:
            conn.execute(text(statement))
    upgrade(engine, "0032")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT arrears_cents FROM deposit_refunds")).scalar() == 0
        diffs = [
            d
            for d in compare_metadata(MigrationContext.configure(conn), DepositRefund.metadata)
            if any(t in repr(d) for t in TABLES)
        ]
    assert diffs == []
    cfg = alembic_config(registry_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0031")
    assert "arrears_cents" not in _columns(engine, "deposit_refunds")
    upgrade(engine, "0032")
    assert "arrears_cents" in _columns(engine, "deposit_refunds")
    engine.dispose()
