"""The processed-events ledger: claiming ids is the dedupe of every redelivery, on both databases."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.intake.held import ledger_connections
from shared.db.processed import claim_events
from shared.events import utc_now


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


async def test_only_ids_not_claimed_before_come_back(sessions: async_sessionmaker[AsyncSession]):
    first, second = _ids(3), _ids(2)
    async with sessions() as session, session.begin():
        assert await claim_events(session, "test", [*first, first[0]], utc_now()) == set(first)
    async with sessions() as session, session.begin():
        # A redelivered batch with two new events: only those are fresh.
        assert await claim_events(session, "test", [*first, *second], utc_now()) == set(second)
    async with sessions() as session, session.begin():
        # Each consumer keeps its own ledger.
        assert await claim_events(session, "other", first, utc_now()) == set(first)
        assert await claim_events(session, "test", [], utc_now()) == set()


async def test_a_rolled_back_claim_leaves_the_ids_free(sessions: async_sessionmaker[AsyncSession]):
    ids = _ids(2)
    with pytest.raises(RuntimeError):
        async with sessions() as session, session.begin():
            assert await claim_events(session, "test", ids, utc_now()) == set(ids)
            raise RuntimeError("the batch failed after claiming")
    async with sessions() as session, session.begin():
        assert await claim_events(session, "test", ids, utc_now()) == set(ids)


async def test_postgres_sessions_plan_each_statement_for_its_parameters(engine: AsyncEngine):
    if engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL setting")
    async with engine.connect() as connection:
        assert (await connection.scalar(text("SHOW plan_cache_mode"))) == "force_custom_plan"


async def test_sqlite_commits_survive_a_power_loss(engine: AsyncEngine, database_url: str) -> None:
    # In WAL mode synchronous=NORMAL flushes the WAL only at checkpoints: a commit (an acknowledged
    # ticket parked in intake's outbox, a routing batch whose offsets are then committed) could be
    # rolled back by a power loss or an OS crash. FULL flushes the WAL at every commit. The delivery
    # ledger's own connection keeps NORMAL: its record after the broker's acknowledgement may be
    # forgotten (a redelivery is then published again), as on PostgreSQL (asynchronous commit).
    if engine.dialect.name != "sqlite":
        pytest.skip("a SQLite setting")
    async with engine.connect() as connection:
        assert await connection.scalar(text("PRAGMA synchronous")) == 2  # FULL
    held = ledger_connections(database_url)
    try:
        assert await held.fetch("PRAGMA synchronous", []) == [(1,)]  # NORMAL
    finally:
        await held.close()
