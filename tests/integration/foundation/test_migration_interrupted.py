"""Migration 0008 on PostgreSQL builds its indexes CONCURRENTLY, outside a transaction: a deploy
job killed while a build waits leaves the column committed and alembic still at 0007, and the
next run must go through (it failed with "column pruned_at already exists")."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import asyncpg
import pytest

from shared.db.migrate import upgrade
from tests.conftest import POSTGRES_URL, _create_postgres_database

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL only (CREATE INDEX CONCURRENTLY)")

BUILD = "CREATE INDEX CONCURRENTLY%"


async def kill_upgrade_while_it_builds(url: str) -> None:
    raw = url.replace("+asyncpg", "")
    writer = await asyncpg.connect(raw)
    transaction = writer.transaction()
    await transaction.start()
    # An open writer: a concurrent index build waits for it to end.
    await writer.execute("LOCK TABLE processed_events IN ROW EXCLUSIVE MODE")
    job = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        f"from shared.db.migrate import upgrade; upgrade({url!r})",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Another connection: a transaction sees one snapshot of pg_stat_activity.
    watcher = await asyncpg.connect(raw)
    try:
        deadline = time.monotonic() + 60
        while not await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1", BUILD):
            assert time.monotonic() < deadline and job.returncode is None, "the upgrade never reached a build"
            await asyncio.sleep(0.1)
    finally:
        await watcher.close()
        job.kill()  # the deploy job is killed (a timeout, an evicted pod) while the build waits
        await job.wait()
        await transaction.rollback()
        await writer.close()


async def state(url: str) -> tuple[str, int]:
    connection = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        version = await connection.fetchval("SELECT version_num FROM alembic_version")
        columns = await connection.fetchval(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = 'router_tickets' AND column_name = 'pruned_at'"
        )
        return str(version), int(columns)
    finally:
        await connection.close()


def test_an_upgrade_killed_during_an_index_build_runs_again() -> None:
    assert POSTGRES_URL
    url = asyncio.run(_create_postgres_database(POSTGRES_URL))
    upgrade(url, "0007_ruleset_null_weights")

    asyncio.run(kill_upgrade_while_it_builds(url))
    assert asyncio.run(state(url)) == ("0007_ruleset_null_weights", 1)  # the half-done state

    upgrade(url, "0008_pruning_indexes")
    assert asyncio.run(state(url)) == ("0008_pruning_indexes", 1)
    upgrade(url)  # and on to the head
