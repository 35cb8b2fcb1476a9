"""bank-statement lines, payers' bank accounts, credit notes

``bank_lines``: each credit line of an imported bank statement, once (unique ``key``), with
what it became (matched, unmatched, ignored); ``payer_accounts``: the bank accounts tenants
pay from, learned from matched lines; ``credit_notes``: credit on an account requested by
one staff member and approved or rejected by another (decision 0033).

Revision ID: 0024
Revises: 0022
Create Date: 2026-12-07 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bank_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("statement", sa.String(length=64), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("booked_on", sa.Date(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("payer", sa.String(length=200), nullable=False),
        sa.Column("payer_account", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("matched_by", sa.String(length=16), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["lease_id"], ["leases.id"]),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index("ix_bank_lines_statement", "bank_lines", ["statement"])
    op.create_index("ix_bank_lines_status", "bank_lines", ["status"])
    op.create_index("ix_bank_lines_lease_id", "bank_lines", ["lease_id"])
    op.create_table(
        "payer_accounts",
        sa.Column("account_no", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("learned_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("account_no"),
    )
    op.create_index("ix_payer_accounts_tenant_id", "payer_accounts", ["tenant_id"])
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["lease_id"], ["leases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_credit_notes_lease_id", "credit_notes", ["lease_id"])
    op.create_index("ix_credit_notes_status", "credit_notes", ["status"])


def downgrade() -> None:
    op.drop_table("credit_notes")
    op.drop_table("payer_accounts")
    op.drop_table("bank_lines")
