"""The audit log's actor by API key id too: key names are not unique

Two keys of one name could not be told apart in the audit. Nullable: entries made before this
version, and changes made without a key (ticketctl on the database), have none.

Revision ID: 0015_audit_actor_key_id
Revises: 0014_outbox_ids_never_reused
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_audit_actor_key_id"
down_revision: str | None = "0014_outbox_ids_never_reused"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("actor_key_id", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:  # SQLite cannot drop a column in place
        batch.drop_column("actor_key_id")
