"""gateway replacement awaiting an admin, claim token issuer and approval, command keys

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-07 06:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("claim_tokens") as batch:
        batch.add_column(
            sa.Column("replace", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("issued_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("approved_by", sa.String(length=64), nullable=True))
    op.create_table(
        "gateway_replacements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("command_kid", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kid"),
    )
    op.create_index(
        op.f("ix_gateway_replacements_gateway_id"),
        "gateway_replacements",
        ["gateway_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_gateway_replacements_site_id"), "gateway_replacements", ["site_id"], unique=False
    )
    op.create_index(
        op.f("ix_gateway_replacements_status"), "gateway_replacements", ["status"], unique=False
    )
    op.create_table(
        "command_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("key_file", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid"),
    )
    op.create_table(
        "gateway_command_trust",
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"]),
        sa.PrimaryKeyConstraint("gateway_id", "kid"),
    )


def downgrade() -> None:
    op.drop_table("gateway_command_trust")
    op.drop_table("command_keys")
    op.drop_index(op.f("ix_gateway_replacements_status"), table_name="gateway_replacements")
    op.drop_index(op.f("ix_gateway_replacements_site_id"), table_name="gateway_replacements")
    op.drop_index(op.f("ix_gateway_replacements_gateway_id"), table_name="gateway_replacements")
    op.drop_table("gateway_replacements")
    with op.batch_alter_table("claim_tokens") as batch:
        batch.drop_column("approved_by")
        batch.drop_column("issued_by")
        batch.drop_column("replace")
