"""who receives the monthly lease reports of a site

``report_recipients`` (site, e-mail address): ``meterflow cloud report mail --month`` sends
each the month's reports (figures in the body, the workbook attached) once per month
(outbox key ``report:SITE:YYYY-MM:ADDRESS``). Who added an address and when. Decision 0035.

Revision ID: 0026
Revises: 0024
Create Date: 2026-12-07 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_recipients",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=120), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "address"),
    )


def downgrade() -> None:
    op.drop_table("report_recipients")
