"""units' property type (residential, office, retail, parking)

``unit_profiles.property_type``: what policies (per site and property type) and the reports
(occupancy by type) group units by. Units profiled before are residential.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 11:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("unit_profiles") as batch:
        batch.add_column(
            sa.Column(
                "property_type",
                sa.String(length=16),
                nullable=False,
                server_default="residential",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("unit_profiles") as batch:
        batch.drop_column("property_type")
