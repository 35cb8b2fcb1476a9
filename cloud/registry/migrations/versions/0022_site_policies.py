"""lease policies per site and property type, effective-dated; leases' policy overrides

``site_policies``: a policy set (the LeasePolicy fields it sets, as JSON) of a site for one
property type or ``all`` from a date on. ``leases.policy_overrides``: single fields set for
one lease (None: none). See docs/decisions/0031-policies-per-site-and-type.md.

Revision ID: 0022
Revises: 0025
Create Date: 2026-12-07 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "site_policies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("property_type", sa.String(length=16), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("preset", sa.String(length=32), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "site_id", "property_type", "effective_from", name="uq_site_policy_day"
        ),
    )
    op.create_index("ix_site_policies_site_id", "site_policies", ["site_id"])
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("policy_overrides", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("policy_overrides")
    op.drop_index("ix_site_policies_site_id", table_name="site_policies")
    op.drop_table("site_policies")
