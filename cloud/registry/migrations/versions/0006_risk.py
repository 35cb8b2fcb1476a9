"""risk: surveys, activities, ticket category, models, scores

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 14:56:41.883376
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "risk_models",
        sa.Column("version", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "tenant_activities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_tenant_activities_tenant_id"), "tenant_activities", ["tenant_id"], unique=False
    )
    op.create_table(
        "tenant_surveys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("answered_on", sa.Date(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_tenant_surveys_tenant_id"), "tenant_surveys", ["tenant_id"], unique=False
    )
    op.create_table(
        "risk_scores",
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("scored_on", sa.Date(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("health", sa.Float(), nullable=False),
        sa.Column("band", sa.String(length=8), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lease_id"],
            ["leases.id"],
        ),
        sa.ForeignKeyConstraint(
            ["model_version"],
            ["risk_models.version"],
        ),
        sa.PrimaryKeyConstraint("lease_id", "scored_on"),
    )
    op.create_index(op.f("ix_risk_scores_scored_on"), "risk_scores", ["scored_on"], unique=False)
    op.add_column(
        "repair_complaints",
        sa.Column("category", sa.String(length=32), nullable=False, server_default="general"),
    )


def downgrade() -> None:
    op.drop_column("repair_complaints", "category")
    op.drop_index(op.f("ix_risk_scores_scored_on"), table_name="risk_scores")
    op.drop_table("risk_scores")
    op.drop_index(op.f("ix_tenant_surveys_tenant_id"), table_name="tenant_surveys")
    op.drop_table("tenant_surveys")
    op.drop_index(op.f("ix_tenant_activities_tenant_id"), table_name="tenant_activities")
    op.drop_table("tenant_activities")
    op.drop_table("risk_models")
