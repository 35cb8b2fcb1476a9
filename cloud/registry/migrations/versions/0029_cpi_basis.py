"""CPI figures on their basis

``cpi_indices.basis``: how a month's figure is given, ``level`` (定基, a fixed-base index;
every row stored before) or ``yoy`` (上年同月=100, what the National Bureau of Statistics
publishes monthly). Decision 0042.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cpi_indices") as batch:
        batch.add_column(
            sa.Column("basis", sa.String(length=8), nullable=False, server_default="level")
        )


def downgrade() -> None:
    with op.batch_alter_table("cpi_indices") as batch:
        batch.drop_column("basis")
