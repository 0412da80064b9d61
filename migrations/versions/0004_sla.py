"""SLA policies and calendars, escalation timers, team load, write-back

Revision ID: 0004_sla
Revises: 0003_classifiers
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_sla"
down_revision: str | None = "0003_classifiers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sla_config_versions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", _JSON, nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("diff", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_config_versions")),
        sa.UniqueConstraint("kind", "name", "version", name="uq_sla_config_versions_kind_name_version"),
    )
    op.create_index("ix_sla_config_versions_kind_name", "sla_config_versions", ["kind", "name"])
    op.create_table(
        "sla_fired_timers",
        sa.Column("timer_id", sa.String(length=400), nullable=False),
        sa.Column("ticket_key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("fired_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("timer_id", name=op.f("pk_sla_fired_timers")),
    )
    op.create_index(op.f("ix_sla_fired_timers_ticket_key"), "sla_fired_timers", ["ticket_key"])
    op.create_table(
        "team_load",
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("open_count", sa.Integer(), nullable=False),
        sa.Column("open_weighted", sa.Float(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("team", name=op.f("pk_team_load")),
    )
    op.create_table(
        "assignment_cursors",
        sa.Column("pool", sa.String(length=1000), nullable=False),
        sa.Column("last_team", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("pool", name=op.f("pk_assignment_cursors")),
    )
    op.create_table(
        "writeback_targets",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=500), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("event_kinds", _JSON, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writeback_targets")),
        sa.UniqueConstraint("name", name=op.f("uq_writeback_targets_name")),
    )
    op.create_index(op.f("ix_writeback_targets_source"), "writeback_targets", ["source"])
    op.create_table(
        "writeback_deliveries",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("target_id", _ID, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("ticket_key", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_writeback_deliveries")),
        sa.UniqueConstraint("target_id", "event_id", name="uq_writeback_deliveries_target_event"),
    )
    op.create_index("ix_writeback_deliveries_due", "writeback_deliveries", ["status", "next_attempt_at"])
    op.create_index(op.f("ix_writeback_deliveries_target_id"), "writeback_deliveries", ["target_id"])
    with op.batch_alter_table("router_tickets") as batch_op:
        batch_op.add_column(sa.Column("sla_clock", _JSON, nullable=True))
        batch_op.add_column(sa.Column("sla_next_due_at", _TS, nullable=True))
        batch_op.create_index(op.f("ix_router_tickets_sla_next_due_at"), ["sla_next_due_at"])


def downgrade() -> None:
    with op.batch_alter_table("router_tickets") as batch_op:
        batch_op.drop_index(op.f("ix_router_tickets_sla_next_due_at"))
        batch_op.drop_column("sla_next_due_at")
        batch_op.drop_column("sla_clock")
    op.drop_index(op.f("ix_writeback_deliveries_target_id"), table_name="writeback_deliveries")
    op.drop_index("ix_writeback_deliveries_due", table_name="writeback_deliveries")
    op.drop_table("writeback_deliveries")
    op.drop_index(op.f("ix_writeback_targets_source"), table_name="writeback_targets")
    op.drop_table("writeback_targets")
    op.drop_table("assignment_cursors")
    op.drop_table("team_load")
    op.drop_index(op.f("ix_sla_fired_timers_ticket_key"), table_name="sla_fired_timers")
    op.drop_table("sla_fired_timers")
    op.drop_index("ix_sla_config_versions_kind_name", table_name="sla_config_versions")
    op.drop_table("sla_config_versions")
