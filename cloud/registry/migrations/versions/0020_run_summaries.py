"""a posted run's signed summary (every statement's amount and own use)

``apportion_runs.summary_payload``, ``summary_kid``, ``summary_signature``: written when a run
is posted, read by the tenant pages' history (decision 0030). Runs posted before stay without
one; their history is verified statement by statement as before.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apportion_runs") as batch:
        batch.add_column(sa.Column("summary_payload", sa.Text(), nullable=True))
        batch.add_column(sa.Column("summary_kid", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("summary_signature", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apportion_runs") as batch:
        batch.drop_column("summary_signature")
        batch.drop_column("summary_kid")
        batch.drop_column("summary_payload")
