"""what a deposit paid of the tenant's unpaid invoices

``deposit_refunds.arrears_cents``: at the settlement, what is left of the deposit after the
deductions pays the tenant's account's open invoices (oldest first, a payment with the
reference ``deposit-refund:ID``), and only the rest is refunded. Refunds settled before keep
0. Decision 0041.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deposit_refunds") as batch:
        batch.add_column(
            sa.Column("arrears_cents", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("deposit_refunds") as batch:
        batch.drop_column("arrears_cents")
