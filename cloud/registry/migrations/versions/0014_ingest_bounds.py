"""ingest: a bounded duplicate filter per gateway key; dead letters carry gateway and size

``seen_envelopes`` (one row per envelope ever accepted) becomes ``ingest_streams`` (one row
per gateway key: a floor and a few ranges of seen seqs, decision 0014). Existing rows are
folded into it: for each key of a gateway, the floor is one past the gateway's highest seq
recorded (holes below it are closed: an envelope still in a gateway's backlog at upgrade time
counts as a duplicate; upgrade with the backlogs drained). Dead letters gain the
gateway their topic names and their payload's size, for the quotas, and a digest that keeps
one letter per distinct message (decision 0013).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 06:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_streams",
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("floor", sa.BigInteger(), nullable=False),
        sa.Column("ranges", sa.Text(), nullable=False),
        sa.Column("closed", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "kid"),
    )
    op.create_index(
        op.f("ix_ingest_streams_updated_at"), "ingest_streams", ["updated_at"], unique=False
    )
    # Carry the old filter over per key: the seqs a key's gateway sent before now.
    op.execute(
        "INSERT INTO ingest_streams (gateway_id, kid, floor, ranges, closed, version, updated_at)"
        " SELECT s.gateway_id, k.kid, max(s.seq) + 1, '[]', 0, 1, max(s.received_at)"
        " FROM seen_envelopes s JOIN gateway_keys k ON k.gateway_id = s.gateway_id"
        " GROUP BY s.gateway_id, k.kid"
    )
    op.drop_table("seen_envelopes")
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("gateway_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("size", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch.create_index(op.f("ix_dead_letters_gateway_id"), ["gateway_id"], unique=False)
        batch.create_unique_constraint("uq_dead_letters_digest", ["digest"])
    op.execute("UPDATE dead_letters SET size = length(payload)")


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_constraint("uq_dead_letters_digest", type_="unique")
        batch.drop_index(op.f("ix_dead_letters_gateway_id"))
        batch.drop_column("digest")
        batch.drop_column("size")
        batch.drop_column("gateway_id")
    op.create_table(
        "seen_envelopes",
        sa.Column("gateway_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("reading_count", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway_id", "seq"),
    )
    op.drop_index(op.f("ix_ingest_streams_updated_at"), table_name="ingest_streams")
    op.drop_table("ingest_streams")
