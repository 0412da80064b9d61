"""What team_load counts, so that a router under other counted statuses recounts it

The counters were kept by deltas under whatever ROUTER_LOAD_COUNTED_STATUSES said when each was
applied, so a change of the setting left them wrong for good. No row yet: the first batch after
this version recounts the loads once, and records what it counted.

Revision ID: 0013_team_load_basis
Revises: 0012_etag_generations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_team_load_basis"
down_revision: str | None = "0012_etag_generations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "team_load_basis",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("basis", sa.String(length=500), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_team_load_basis")),
    )


def downgrade() -> None:
    op.drop_table("team_load_basis")
