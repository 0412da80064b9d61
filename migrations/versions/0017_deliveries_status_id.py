"""Write-back deliveries are indexed by status and id, for their listing by status

Revision ID: 0017_deliveries_status_id
Revises: 0016_retired_source_names

``GET /v1/writeback/deliveries?status=failed&before=N`` pages newest first: without this index
PostgreSQL fetched every delivery of that status and sorted them for each page (or read the table
backwards by id, filtering on the status), and failed deliveries are never pruned. With it a page
reads just its rows, in order.

On PostgreSQL the index is built CONCURRENTLY, outside the migration's transaction, so that the
routers keep queueing deliveries while it is built (delivered ones are kept for
``ROUTER_DEDUP_RETENTION_DAYS``: the table can be large).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_deliveries_status_id"
down_revision: str | None = "0016_retired_source_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_writeback_deliveries_status_id"
TABLE = "writeback_deliveries"
COLUMNS = ["status", "id"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(NAME, TABLE, COLUMNS)
        return
    # Alembic records this revision only after the build: a run interrupted during it is run again,
    # and a CONCURRENTLY build that was interrupted leaves an invalid index of this name behind.
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")
        op.create_index(NAME, TABLE, COLUMNS, postgresql_concurrently=True)


def downgrade() -> None:
    op.drop_index(NAME, table_name=TABLE)
