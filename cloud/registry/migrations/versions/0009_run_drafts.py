"""apportionment runs keep what they computed: statement drafts and the tree's balances

A run computes its statements (unsigned, canonical JSON) and its meter tree's balances once,
when it is created; posting signs the stored drafts and finance's pages read them, instead
of recomputing the run. Runs created before this revision have neither and are recomputed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apportion_statement_drafts",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("party", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["apportion_runs.id"],
        ),
        sa.PrimaryKeyConstraint("run_id", "unit", "party"),
    )
    op.add_column("apportion_runs", sa.Column("balances", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apportion_runs") as batch:
        batch.drop_column("balances")
    op.drop_table("apportion_statement_drafts")
