"""The names of deleted webhook sources, refused to POST /v1/tickets

Once a webhook source was deleted its name was free: an intake key could post under it, update the
deleted source's tickets still in the router and trigger write-backs to its helpdesk. The sources
deleted before this version are found in the audit log (every deletion is recorded there, in its
own transaction), unless a source has the name again.

Revision ID: 0016_retired_source_names
Revises: 0015_audit_actor_key_id
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_retired_source_names"
down_revision: str | None = "0015_audit_actor_key_id"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retired_source_names",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_retired_source_names")),
    )
    # The last deletion's time; copied as stored, so each database keeps its own representation.
    op.execute(
        "INSERT INTO retired_source_names (name, retired_at) "
        "SELECT entity_id, MAX(at) FROM audit_log "
        "WHERE entity = 'source' AND action = 'source.delete' "
        "AND entity_id NOT IN (SELECT name FROM sources) "
        "GROUP BY entity_id"
    )


def downgrade() -> None:
    op.drop_table("retired_source_names")
