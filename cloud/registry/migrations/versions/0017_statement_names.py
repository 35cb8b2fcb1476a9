"""statements in the tenant's language: display names of meters and tenants, and the name a
tenant types when confirming a statement

``meter_installations.name`` and ``occupancy_segments.tenant_name`` hold the optional display
names of the site file (empty: the id is shown); ``statement_confirmations.confirmed_name``
is the name the tenant typed (empty for confirmations recorded before it was asked for).
Decision 0021. It follows 0016 (the print settings, merged first), so that a registry
already at 0016 upgrades through it.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 08:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("meter_installations") as batch:
        batch.add_column(
            sa.Column("name", sa.String(length=100), nullable=False, server_default="")
        )
    with op.batch_alter_table("occupancy_segments") as batch:
        batch.add_column(
            sa.Column("tenant_name", sa.String(length=100), nullable=False, server_default="")
        )
    with op.batch_alter_table("statement_confirmations") as batch:
        batch.add_column(
            sa.Column("confirmed_name", sa.String(length=100), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("statement_confirmations") as batch:
        batch.drop_column("confirmed_name")
    with op.batch_alter_table("occupancy_segments") as batch:
        batch.drop_column("tenant_name")
    with op.batch_alter_table("meter_installations") as batch:
        batch.drop_column("name")
