"""Pruning by age: indexes for the router's applied-event ids and resolved tickets, and a ticket's pruned_at

Revision ID: 0008_pruning_indexes
Revises: 0007_ruleset_null_weights

``processed_events`` gains a row per event the router applies and was never pruned; the router now
deletes ids older than ``ROUTER_DEDUP_RETENTION_DAYS``, and, when ``ROUTER_RESOLVED_RETENTION_DAYS``
is set, cuts tickets resolved longer ago than that down to stubs (services/router/retention.py),
marked by the new ``router_tickets.pruned_at``. Both need their rows findable by age. The tickets'
index is partial (resolved tickets not pruned yet), so open tickets, which every routing batch
updates, never touch it.

On PostgreSQL the indexes are built CONCURRENTLY, outside the migration's transaction, so that
large tables keep taking the routers' writes while they are built.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008_pruning_indexes"
down_revision: str | None = "0007_ruleset_null_weights"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A copy of services/router/models.py PRUNABLE when this was written.
PRUNABLE = sa.text("resolved_at IS NOT NULL AND pruned_at IS NULL")
# name, table, columns, extra keyword arguments
INDEXES: list[tuple[str, str, list[str], dict[str, Any]]] = [
    ("ix_processed_events_consumer_processed_at", "processed_events", ["consumer", "processed_at"], {}),
    (
        "ix_router_tickets_resolved_at",
        "router_tickets",
        ["resolved_at"],
        {"postgresql_where": PRUNABLE, "sqlite_where": PRUNABLE},
    ),
]


def upgrade() -> None:
    # Nullable without a default: on both databases a metadata-only change, whatever the table's size.
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("router_tickets") as batch:
            batch.add_column(sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))
        for name, table, columns, extra in INDEXES:
            op.create_index(name, table, columns, **extra)
        return
    # The autocommit block below commits the column before the index builds, while alembic records
    # this revision only after them: a run interrupted during a build is run again in full, so
    # every step here must find its own earlier work done without failing.
    op.execute("ALTER TABLE router_tickets ADD COLUMN IF NOT EXISTS pruned_at TIMESTAMP WITH TIME ZONE")
    with op.get_context().autocommit_block():
        for name, table, columns, extra in INDEXES:
            # A CONCURRENTLY build that was interrupted leaves an invalid index of this name behind.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.create_index(name, table, columns, postgresql_concurrently=True, **extra)


def downgrade() -> None:
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("router_tickets") as batch:
        batch.drop_column("pruned_at")
