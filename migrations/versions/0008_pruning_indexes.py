"""Indexes to prune by age: the router's applied-event ids and its resolved tickets

Revision ID: 0008_pruning_indexes
Revises: 0007_ruleset_null_weights

``processed_events`` gains a row per event the router applies and was never pruned; the router now
deletes ids older than ``ROUTER_DEDUP_RETENTION_DAYS``, and, when ``ROUTER_RESOLVED_RETENTION_DAYS``
is set, tickets resolved longer ago than that (services/router/retention.py). Both need their rows
findable by age. The tickets' index is partial (resolved ones only), so open tickets, which every
routing batch updates, never touch it.

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

RESOLVED = sa.text("resolved_at IS NOT NULL")
# name, table, columns, extra keyword arguments
INDEXES: list[tuple[str, str, list[str], dict[str, Any]]] = [
    ("ix_processed_events_consumer_processed_at", "processed_events", ["consumer", "processed_at"], {}),
    (
        "ix_router_tickets_resolved_at",
        "router_tickets",
        ["resolved_at"],
        {"postgresql_where": RESOLVED, "sqlite_where": RESOLVED},
    ),
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for name, table, columns, extra in INDEXES:
            op.create_index(name, table, columns, **extra)
        return
    with op.get_context().autocommit_block():
        for name, table, columns, extra in INDEXES:
            # A CONCURRENTLY build that was interrupted leaves an invalid index of this name behind.
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            op.create_index(name, table, columns, postgresql_concurrently=True, **extra)


def downgrade() -> None:
    for name, table, _, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
