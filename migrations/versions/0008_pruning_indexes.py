"""An index to prune the router's applied-event ids by age

Revision ID: 0008_pruning_indexes
Revises: 0007_ruleset_null_weights

``processed_events`` gains a row per event the router applies and was never pruned; the router now
deletes ids older than ``ROUTER_DEDUP_RETENTION_DAYS`` (services/router/retention.py), which needs
them findable by age. On PostgreSQL the index is built CONCURRENTLY, outside the migration's
transaction, so that a large table keeps taking the routers' inserts while it is built.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_pruning_indexes"
down_revision: str | None = "0007_ruleset_null_weights"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_processed_events_consumer_processed_at"
COLUMNS = ["consumer", "processed_at"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            # A CONCURRENTLY build that was interrupted leaves an invalid index of this name behind.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
            op.create_index(
                INDEX, "processed_events", ["consumer", "processed_at"], postgresql_concurrently=True
            )
    else:
        op.create_index(INDEX, "processed_events", COLUMNS)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="processed_events")
