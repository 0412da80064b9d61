"""Teams, write-back targets and sources get a generation, drawn at creation, for their ETags

A resource deleted and created again under the same name (or, on SQLite, the same target id)
started at revision 1 again, so an If-Match read from the deleted one matched the new one. Rows
from before this version share one generation: the ETags read before it carry none and match
nothing, and every row created from now on draws its own.

Revision ID: 0012_etag_generations
Revises: 0011_delivery_request_digest
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_etag_generations"
down_revision: str | None = "0011_delivery_request_digest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("teams", "writeback_targets", "sources")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("generation", sa.String(16), nullable=False, server_default="0" * 16))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("generation")
