"""lease-operations roles: building scope of staff accounts, tenants' ID numbers

``web_accounts.buildings`` holds the ``SITE/BUILDING`` keys an account (a manager, supervisor
or legal) is limited to within its sites; empty (the default, and every existing account):
whole sites. ``tenants.id_number`` is a tenant's ID number (身份证号 or 统一社会信用代码),
shown in full only to legal and admin (cloud/staff/visibility.py). Decision 0028.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-07 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("web_accounts") as batch:
        batch.add_column(sa.Column("buildings", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("id_number", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("id_number")
    with op.batch_alter_table("web_accounts") as batch:
        batch.drop_column("buildings")
