"""close: display names, site settings, run versions

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 03:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table rebuild on SQLite, where the foreign key stays the ORM's)
    op.add_column("units", sa.Column("name", sa.String(100), nullable=False, server_default=""))
    op.add_column(
        "meter_tree_nodes", sa.Column("name", sa.String(100), nullable=False, server_default="")
    )
    op.add_column("apportion_runs", sa.Column("supersedes_id", sa.String(36), nullable=True))
    op.add_column(
        "apportion_runs", sa.Column("version", sa.Integer(), nullable=False, server_default="1")
    )
    if op.get_bind().dialect.name != "sqlite":
        op.create_foreign_key(
            "fk_apportion_runs_supersedes",
            "apportion_runs",
            "apportion_runs",
            ["supersedes_id"],
            ["id"],
        )
    op.create_table(
        "site_settings",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("registers", sa.JSON(), nullable=False),
        sa.Column("quantities", sa.JSON(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("imported_by", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"]),
        sa.PrimaryKeyConstraint("site_id"),
    )


def downgrade() -> None:
    op.drop_table("site_settings")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_apportion_runs_supersedes", "apportion_runs", type_="foreignkey")
    for table, column in (
        ("apportion_runs", "version"),
        ("apportion_runs", "supersedes_id"),
        ("meter_tree_nodes", "name"),
        ("units", "name"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
