"""printable statements: the site's property company, staff display names

``site_settings.property`` keeps a site file's optional ``property`` section (company,
address, phone, due_days: printed on each statement); ``web_accounts.display_name`` is the
name a statement prints for the staff who reviewed and approved its run (the user name when
there is none). Decision 0022.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-07 08:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("site_settings") as batch:
        batch.add_column(sa.Column("property", sa.JSON(), nullable=True))
    with op.batch_alter_table("web_accounts") as batch:
        batch.add_column(sa.Column("display_name", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("web_accounts") as batch:
        batch.drop_column("display_name")
    with op.batch_alter_table("site_settings") as batch:
        batch.drop_column("property")
