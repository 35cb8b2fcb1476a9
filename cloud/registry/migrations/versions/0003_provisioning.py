"""provisioning: single-use claim tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "claim_tokens",
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("site_config", sa.Text(), nullable=False),
        sa.Column("mqtt_url", sa.String(length=300), nullable=False),
        sa.Column("mqtt_username", sa.String(length=200), nullable=True),
        sa.Column("mqtt_password", sa.String(length=200), nullable=True),
        sa.Column("topic_prefix", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_kid", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.PrimaryKeyConstraint("token_sha256"),
    )
    op.create_index(
        op.f("ix_claim_tokens_gateway_id"), "claim_tokens", ["gateway_id"], unique=False
    )
    op.create_index(op.f("ix_claim_tokens_site_id"), "claim_tokens", ["site_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_claim_tokens_site_id"), table_name="claim_tokens")
    op.drop_index(op.f("ix_claim_tokens_gateway_id"), table_name="claim_tokens")
    op.drop_table("claim_tokens")
