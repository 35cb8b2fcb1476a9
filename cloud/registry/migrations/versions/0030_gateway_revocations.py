"""gateway revocations: who revoked which keys of a gateway, when and why

``gateway_revocations``: one row per revocation (lost, stolen, decommissioned, other with a
note, or replaced by new hardware), with the revoked key ids. Keys revoked before this
revision have no row. Decision 0043.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 19:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_revocations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("revoked_by", sa.String(length=100), nullable=False),
        sa.Column("origin", sa.String(length=100), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kids", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_gateway_revocations_gateway_id"),
        "gateway_revocations",
        ["gateway_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gateway_revocations_gateway_id"), table_name="gateway_revocations")
    op.drop_table("gateway_revocations")
