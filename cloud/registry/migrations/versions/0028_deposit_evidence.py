"""deposit refunds through the product: evidence files and payment references

``deposit_evidence``: the files uploaded as deductions' evidence (JPEG, PNG, PDF), stored
once by their SHA-256 with their type, size [bytes], who uploaded them and when (UTC).
``deposit_refunds.payment_ref``: the bank transfer's number of a paid refund. Decision 0041.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deposit_evidence",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    with op.batch_alter_table("deposit_refunds") as batch:
        batch.add_column(sa.Column("payment_ref", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deposit_refunds") as batch:
        batch.drop_column("payment_ref")
    op.drop_table("deposit_evidence")
