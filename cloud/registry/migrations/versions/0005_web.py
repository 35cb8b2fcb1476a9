"""web: staff accounts and sessions, tenant statement links, confirmations and disputes,
gateway status, gateway commands, audit log

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 13:22:00.871460
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_commands",
        sa.Column("cmd_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("issued_by", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("cmd_id"),
    )
    op.create_index(
        op.f("ix_gateway_commands_gateway_id"), "gateway_commands", ["gateway_id"], unique=False
    )
    op.create_table(
        "web_accounts",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("sites", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "web_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_web_audit_at"), "web_audit", ["at"], unique=False)
    op.create_index(op.f("ix_web_audit_subject"), "web_audit", ["subject"], unique=False)
    op.create_table(
        "web_sessions",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["username"],
            ["web_accounts.username"],
        ),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_index(op.f("ix_web_sessions_username"), "web_sessions", ["username"], unique=False)
    op.create_table(
        "gateway_status",
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("state_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("health_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kid", sa.String(length=64), nullable=True),
        sa.Column("epoch", sa.Integer(), nullable=True),
        sa.Column("clock", sa.String(length=16), nullable=True),
        sa.Column("uptime_s", sa.Float(), nullable=True),
        sa.Column("pending_readings", sa.Integer(), nullable=True),
        sa.Column("unacked_envelopes", sa.Integer(), nullable=True),
        sa.Column("oldest_age_s", sa.Float(), nullable=True),
        sa.Column("outbox_alarm", sa.Boolean(), nullable=True),
        sa.Column("evicted_readings", sa.BigInteger(), nullable=True),
        sa.Column("meters", sa.JSON(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["gateways.id"],
        ),
        sa.PrimaryKeyConstraint("gateway_id"),
    )
    op.create_index(op.f("ix_gateway_status_site_id"), "gateway_status", ["site_id"], unique=False)
    op.create_table(
        "statement_confirmations",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("link_nonce", sa.String(length=32), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["apportion_runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "unit", "party"),
    )
    op.create_table(
        "statement_disputes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("link_nonce", sa.String(length=32), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["apportion_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_statement_disputes_run_id"), "statement_disputes", ["run_id"], unique=False
    )
    op.create_index(
        op.f("ix_statement_disputes_site_id"), "statement_disputes", ["site_id"], unique=False
    )
    op.create_index(
        op.f("ix_statement_disputes_status"), "statement_disputes", ["status"], unique=False
    )
    op.create_table(
        "tenant_links",
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_on", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["apportion_runs.id"],
        ),
        sa.PrimaryKeyConstraint("nonce"),
    )
    op.create_index(
        "ix_tenant_links_statement", "tenant_links", ["run_id", "unit", "party"], unique=False
    )
    op.create_index(op.f("ix_tenant_links_unit"), "tenant_links", ["unit"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_tenant_links_unit"), table_name="tenant_links")
    op.drop_index("ix_tenant_links_statement", table_name="tenant_links")
    op.drop_table("tenant_links")
    op.drop_index(op.f("ix_statement_disputes_status"), table_name="statement_disputes")
    op.drop_index(op.f("ix_statement_disputes_site_id"), table_name="statement_disputes")
    op.drop_index(op.f("ix_statement_disputes_run_id"), table_name="statement_disputes")
    op.drop_table("statement_disputes")
    op.drop_table("statement_confirmations")
    op.drop_index(op.f("ix_gateway_status_site_id"), table_name="gateway_status")
    op.drop_table("gateway_status")
    op.drop_index(op.f("ix_web_sessions_username"), table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index(op.f("ix_web_audit_subject"), table_name="web_audit")
    op.drop_index(op.f("ix_web_audit_at"), table_name="web_audit")
    op.drop_table("web_audit")
    op.drop_table("web_accounts")
    op.drop_index(op.f("ix_gateway_commands_gateway_id"), table_name="gateway_commands")
    op.drop_table("gateway_commands")
