"""the language of each report recipient's e-mail

``report_recipients.language`` (``zh-CN`` by default, or ``en``): the monthly lease-report
e-mail to the address — subject, figures and the attached workbook — is worded in it.
Before, one language was chosen per run of ``report mail`` for every recipient.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("report_recipients") as batch:
        batch.add_column(
            sa.Column("language", sa.String(length=8), nullable=False, server_default="zh-CN")
        )


def downgrade() -> None:
    with op.batch_alter_table("report_recipients") as batch:
        batch.drop_column("language")
