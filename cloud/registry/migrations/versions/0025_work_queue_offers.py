"""work queue per person and renewal offers with states and approval

``web_accounts.staff_id``: the staff record whose reminders and tasks are the account's in the
work queue. ``renewal_offers``: ``approval`` (none, pending, approved, rejected) with who
decided and when; ``status`` moves to_renew → invited → negotiating → signed / lost (offers
made before are ``to_renew`` if they were open, ``signed`` if accepted); every move is a row
of ``renewal_offer_steps``.

Revision ID: 0025
Revises: 0021
Create Date: 2026-12-07 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("web_accounts") as batch:
        batch.add_column(sa.Column("staff_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("renewal_offers") as batch:
        batch.add_column(
            sa.Column("approval", sa.String(length=12), nullable=False, server_default="none")
        )
        batch.add_column(sa.Column("decided_by", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE renewal_offers SET status = 'to_renew' WHERE status = 'open'")
    op.execute("UPDATE renewal_offers SET status = 'signed' WHERE status = 'accepted'")
    op.execute(
        "UPDATE renewal_offers SET approval = 'pending' WHERE flagged AND status = 'to_renew'"
    )
    op.create_index(op.f("ix_renewal_offers_status"), "renewal_offers", ["status"], unique=False)
    op.create_table(
        "renewal_offer_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=12), nullable=False),
        sa.Column("to_status", sa.String(length=12), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["offer_id"], ["renewal_offers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_renewal_offer_steps_offer_id"), "renewal_offer_steps", ["offer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_renewal_offer_steps_offer_id"), table_name="renewal_offer_steps")
    op.drop_table("renewal_offer_steps")
    op.drop_index(op.f("ix_renewal_offers_status"), table_name="renewal_offers")
    op.execute("UPDATE renewal_offers SET status = 'accepted' WHERE status = 'signed'")
    op.execute("UPDATE renewal_offers SET status = 'open' WHERE status <> 'accepted'")
    with op.batch_alter_table("renewal_offers") as batch:
        batch.drop_column("decided_at")
        batch.drop_column("decided_by")
        batch.drop_column("approval")
    with op.batch_alter_table("web_accounts") as batch:
        batch.drop_column("staff_id")
