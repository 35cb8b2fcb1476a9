"""apportionment: units, meter tree, installations, occupancy, rules, tariffs, bills, runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apportion_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("result_hash", sa.String(length=64), nullable=False),
        sa.Column("inputs", sa.Text(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reviewed_by", sa.String(length=64), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posted_by", sa.String(length=64), nullable=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_by", sa.String(length=64), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_apportion_runs_input_hash"), "apportion_runs", ["input_hash"], unique=False
    )
    op.create_index(op.f("ix_apportion_runs_site_id"), "apportion_runs", ["site_id"], unique=False)
    op.create_index(op.f("ix_apportion_runs_status"), "apportion_runs", ["status"], unique=False)
    op.create_table(
        "source_bills",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("invoice", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("demand_kw", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site_id", "invoice"),
    )
    op.create_index(op.f("ix_source_bills_site_id"), "source_bills", ["site_id"], unique=False)
    op.create_table(
        "tariff_versions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("prices", sa.JSON(), nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("demand_price", sa.Numeric(precision=12, scale=4), nullable=True),
        sa.Column("markup", sa.Numeric(precision=12, scale=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_tariff_versions_site_id"), "tariff_versions", ["site_id"], unique=False
    )
    op.create_table(
        "units",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("area_m2", sa.Numeric(precision=14, scale=4), nullable=False),
        sa.Column("building", sa.String(length=64), nullable=False),
        sa.Column("floor", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_units_site_id"), "units", ["site_id"], unique=False)
    op.create_table(
        "apportion_lines",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("line_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("adjusts_run_id", sa.String(length=36), nullable=True),
        sa.Column("register", sa.String(length=16), nullable=False),
        sa.Column("tariff", sa.String(length=64), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("from_date", sa.String(length=10), nullable=False),
        sa.Column("to_date", sa.String(length=10), nullable=False),
        sa.Column("component", sa.String(length=24), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("kwh", sa.Numeric(precision=24, scale=6), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["adjusts_run_id"],
            ["apportion_runs.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["apportion_runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "line_no"),
    )
    op.create_index(op.f("ix_apportion_lines_party"), "apportion_lines", ["party"], unique=False)
    op.create_table(
        "apportion_statements",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["apportion_runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "unit", "party"),
    )
    op.create_table(
        "meter_tree_nodes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("unit_id", sa.String(length=64), nullable=True),
        sa.Column("landlord_area_m2", sa.Numeric(precision=14, scale=4), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["meter_tree_nodes.id"],
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("unit_id"),
    )
    op.create_index(
        op.f("ix_meter_tree_nodes_parent_id"), "meter_tree_nodes", ["parent_id"], unique=False
    )
    op.create_index(
        op.f("ix_meter_tree_nodes_site_id"), "meter_tree_nodes", ["site_id"], unique=False
    )
    op.create_table(
        "source_bill_amounts",
        sa.Column("bill_id", sa.Integer(), nullable=False),
        sa.Column("register", sa.String(length=16), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bill_id"],
            ["source_bills.id"],
        ),
        sa.PrimaryKeyConstraint("bill_id", "register"),
    )
    op.create_table(
        "allocation_rules",
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("basis", sa.String(length=16), nullable=False),
        sa.Column("blend_p", sa.Numeric(precision=6, scale=4), nullable=False),
        sa.Column("coefficients", sa.JSON(), nullable=False),
        sa.Column("formula_driver", sa.String(length=64), nullable=True),
        sa.Column("formula_base", sa.Numeric(precision=10, scale=4), nullable=True),
        sa.Column("formula_span", sa.Numeric(precision=10, scale=4), nullable=True),
        sa.Column("loss_cap", sa.Numeric(precision=6, scale=4), nullable=True),
        sa.Column("vacant", sa.String(length=16), nullable=False),
        sa.Column("estimate_limit", sa.Numeric(precision=6, scale=4), nullable=False),
        sa.Column("on_estimate_excess", sa.String(length=8), nullable=False),
        sa.Column("common_type", sa.String(length=16), nullable=True),
        sa.Column("exclusive_to", sa.String(length=64), nullable=True),
        sa.Column("shared_by", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["exclusive_to"],
            ["meter_tree_nodes.id"],
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["meter_tree_nodes.id"],
        ),
        sa.PrimaryKeyConstraint("node_id"),
    )
    op.create_table(
        "meter_installations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("meter_id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("installed_on", sa.Date(), nullable=True),
        sa.Column("removed_on", sa.Date(), nullable=True),
        sa.Column("capacity", sa.Numeric(precision=20, scale=4), nullable=True),
        sa.Column("bidirectional", sa.Boolean(), nullable=False),
        sa.Column("replaced_by_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["meter_id"],
            ["meters.id"],
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["meter_tree_nodes.id"],
        ),
        sa.ForeignKeyConstraint(
            ["replaced_by_id"],
            ["meter_installations.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_meter_installations_meter_id"), "meter_installations", ["meter_id"], unique=False
    )
    op.create_index(
        op.f("ix_meter_installations_node_id"), "meter_installations", ["node_id"], unique=False
    )
    op.create_table(
        "occupancy_segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("from_date", sa.Date(), nullable=False),
        sa.Column("to_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["meter_tree_nodes.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_occupancy_segments_node_id"), "occupancy_segments", ["node_id"], unique=False
    )
    op.create_table(
        "multiplier_steps",
        sa.Column("installation_id", sa.String(length=64), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("multiplier", sa.Numeric(precision=16, scale=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["installation_id"],
            ["meter_installations.id"],
        ),
        sa.PrimaryKeyConstraint("installation_id", "effective_from"),
    )


def downgrade() -> None:
    op.drop_table("multiplier_steps")
    op.drop_index(op.f("ix_occupancy_segments_node_id"), table_name="occupancy_segments")
    op.drop_table("occupancy_segments")
    op.drop_index(op.f("ix_meter_installations_node_id"), table_name="meter_installations")
    op.drop_index(op.f("ix_meter_installations_meter_id"), table_name="meter_installations")
    op.drop_table("meter_installations")
    op.drop_table("allocation_rules")
    op.drop_table("source_bill_amounts")
    op.drop_index(op.f("ix_meter_tree_nodes_site_id"), table_name="meter_tree_nodes")
    op.drop_index(op.f("ix_meter_tree_nodes_parent_id"), table_name="meter_tree_nodes")
    op.drop_table("meter_tree_nodes")
    op.drop_table("apportion_statements")
    op.drop_index(op.f("ix_apportion_lines_party"), table_name="apportion_lines")
    op.drop_table("apportion_lines")
    op.drop_index(op.f("ix_units_site_id"), table_name="units")
    op.drop_table("units")
    op.drop_index(op.f("ix_tariff_versions_site_id"), table_name="tariff_versions")
    op.drop_table("tariff_versions")
    op.drop_index(op.f("ix_source_bills_site_id"), table_name="source_bills")
    op.drop_table("source_bills")
    op.drop_index(op.f("ix_apportion_runs_status"), table_name="apportion_runs")
    op.drop_index(op.f("ix_apportion_runs_site_id"), table_name="apportion_runs")
    op.drop_index(op.f("ix_apportion_runs_input_hash"), table_name="apportion_runs")
    op.drop_table("apportion_runs")
