"""Outbox row ids are never used twice on SQLite (AUTOINCREMENT)

A plain INTEGER PRIMARY KEY gives a new row the largest id left plus one, so once the newest rows
were deleted their ids came back. A process that deletes a row by id once its send is acknowledged
(intake's relay, a late delivery of a timed-out send) then deleted another process's row that took
the id meanwhile: an event never published. PostgreSQL's sequences never give an id twice.

Revision ID: 0014_outbox_ids_never_reused
Revises: 0013_team_load_basis
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_outbox_ids_never_reused"
down_revision: str | None = "0013_team_load_basis"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The table is made again, rows, ids and index kept; sqlite_sequence starts at the largest id.
    with op.batch_alter_table("outbox", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("outbox", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
