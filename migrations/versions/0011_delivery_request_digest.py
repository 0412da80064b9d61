"""An Idempotency-Key remembers the digest of the request it was first used with

Revision ID: 0011_delivery_request_digest
Revises: 0010_writeback_sent_requests
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_delivery_request_digest"
down_revision: str | None = "0010_writeback_sent_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows claimed before this version have no digest: a retry with their key is a duplicate, as it
    # always was. Webhook deliveries never have one (a vendor's redelivery is the same event).
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.add_column(sa.Column("request_digest", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.drop_column("request_digest")
