"""Write-back deliveries remember which of their requests got through, so a retry sends the rest

Revision ID: 0010_writeback_sent_requests
Revises: 0009_writeback_connectors
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010_writeback_sent_requests"
down_revision: str | None = "0009_writeback_connectors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Queued deliveries start with none sent: what an attempt before this version got through is
    # not known, and is sent again as it always was.
    json_doc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    with op.batch_alter_table("writeback_deliveries") as batch:
        batch.add_column(sa.Column("sent_requests", json_doc, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("writeback_deliveries") as batch:
        batch.drop_column("sent_requests")
