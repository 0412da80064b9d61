"""Programmatic Alembic: ``ticketctl migrate`` and the test fixtures apply migrations this way."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from shared.db.engine import create_engine

REPO_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def expected_heads(database_url: str) -> set[str]:
    """The heads of the migrations this code ships."""
    return set(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


async def current_heads(database_url: str) -> set[str]:
    """The revisions the database's schema is at (none before the first migration)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:

            def heads(sync_conn: Connection) -> set[str]:
                return set(MigrationContext.configure(sync_conn).get_current_heads())

            return await conn.run_sync(heads)
    finally:
        await engine.dispose()


def unknown_revisions(database_url: str, found: set[str]) -> set[str]:
    """Those of ``found`` (the database's revisions) that these migrations do not know: a newer
    version of the code migrated the schema. Migrations are expand/contract (deploy/README.md), so
    this code runs on such a schema, and rolling back is deploying it again."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    return found - {known.revision for known in script.walk_revisions()}
