"""Migrations are the only way the schema changes: they apply, roll back, and match the models."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from migrations.metadata import metadata
from shared.db.engine import create_engine
from shared.db.migrate import alembic_config, downgrade, upgrade
from tests.conftest import POSTGRES_URL, _create_postgres_database, database_params


def fresh_url(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    assert POSTGRES_URL
    return asyncio.run(_create_postgres_database(POSTGRES_URL))


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("kind", database_params())
def test_upgrade_downgrade_upgrade(kind, tmp_path):
    url = fresh_url(kind, tmp_path)
    upgrade(url)
    assert set(metadata.tables) <= asyncio.run(table_names(url))
    downgrade(url, "base")
    assert asyncio.run(table_names(url)) <= {"alembic_version"}
    upgrade(url)
    assert set(metadata.tables) <= asyncio.run(table_names(url))


def test_one_head_and_models_match_migrations(tmp_path):
    config = alembic_config(f"sqlite+aiosqlite:///{tmp_path / 'check.db'}")
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"several migration heads {heads}: add a merge revision"
    command.upgrade(config, "heads")
    command.check(config)  # raises when the models need a migration that does not exist
