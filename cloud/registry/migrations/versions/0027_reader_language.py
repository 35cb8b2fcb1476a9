"""notices and task notes in their reader's language

``tenants.language`` and ``staff.language`` (``zh-CN`` by default, or ``en``): the language
of the notices sent to the person. ``lease_tasks.note_code`` and ``note_params`` (JSON
text): a task's note as a code and its values, worded in the reader's language when shown;
``note`` keeps the English for commands, the API and the audit log. Tasks opened before
have an empty code and show their English note. Decision 0040.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07 16:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("tenants", "staff"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("language", sa.String(length=8), nullable=False, server_default="zh-CN")
            )
    with op.batch_alter_table("lease_tasks") as batch:
        batch.add_column(
            sa.Column("note_code", sa.String(length=32), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("note_params", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("lease_tasks") as batch:
        batch.drop_column("note_params")
        batch.drop_column("note_code")
    for table in ("staff", "tenants"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("language")
