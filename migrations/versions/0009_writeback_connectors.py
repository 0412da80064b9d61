"""Write-back connectors: a target is a signed webhook or a helpdesk's own API; deliveries of a
ticket are sent in order

Revision ID: 0009_writeback_connectors
Revises: 0008_pruning_indexes
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_writeback_connectors"
down_revision: str | None = "0008_pruning_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Server defaults: existing targets stay the signed webhooks they were, with no options.
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with op.batch_alter_table("writeback_targets") as batch:
        batch.add_column(sa.Column("connector", sa.String(20), nullable=False, server_default="webhook"))
        batch.add_column(sa.Column("options", json_doc, nullable=False, server_default="{}"))
    # Deliveries of targets deleted before this version: nothing would send them, and SQLite would
    # hand a deleted target's id, with its deliveries, to the next target created.
    op.execute("DELETE FROM writeback_deliveries WHERE target_id NOT IN (SELECT id FROM writeback_targets)")
    # A queue table of a few rows per ticket: a plain build is short.
    op.create_index(
        "ix_writeback_deliveries_ticket", "writeback_deliveries", ["ticket_key", "target_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_writeback_deliveries_ticket", table_name="writeback_deliveries")
    with op.batch_alter_table("writeback_targets") as batch:
        batch.drop_column("options")
        batch.drop_column("connector")
