"""Source revisions (the ETag of the sources admin API)

Revision ID: 0006_source_revision
Revises: 0005_team_schedule
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_source_revision"
down_revision: str | None = "0005_team_schedule"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The server default gives existing sources revision 1; new ones get it from the ORM too.
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("revision")
