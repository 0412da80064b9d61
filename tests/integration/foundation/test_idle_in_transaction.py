"""A service's PostgreSQL session left idle inside a transaction is ended by the server after
``DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_S``, and its locks with it. Before, a replica frozen with a
transaction open (SIGSTOP, a hung VM) kept its locks, intake's outbox relay lock among them, until
its TCP connection died. The service itself recovers: the dead connection fails once, as an
outage, and the pool connects afresh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared.db.errors import is_transient_database_error
from shared.runtime import Resources, open_resources
from shared.settings import CommonSettings
from tests.conftest import POSTGRES_URL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL not set"),
]

LOCK_KEY = 0x1D1E_0001  # a key of this test's own


@pytest.fixture
async def resources() -> AsyncIterator[Resources]:
    settings = CommonSettings(database_url=POSTGRES_URL or "", database_idle_in_transaction_timeout_s=0.5)
    opened = await open_resources(settings, broker_required=False)
    yield opened
    await opened.engine.dispose()


async def _lock_free() -> bool:
    """Whether a session outside the services' engine can take the lock (given back at once)."""
    assert POSTGRES_URL
    connection = await asyncpg.connect(POSTGRES_URL)
    try:
        taken = bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY))
        if taken:
            await connection.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        return taken
    finally:
        await connection.close()


async def test_the_services_engine_takes_the_limit_from_the_settings(resources: Resources):
    async with resources.engine.connect() as connection:
        assert await connection.scalar(text("SHOW idle_in_transaction_session_timeout")) == "500ms"


async def test_a_session_idle_in_a_transaction_is_ended_and_the_pool_recovers(resources: Resources):
    async with resources.sessions() as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
        await session.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        assert not await _lock_free()
        await asyncio.sleep(1.5)  # a frozen replica: nothing runs on its session
        assert await _lock_free()  # the server ended the session and freed its lock
        # The thawed replica's next statement fails as the database being away: a consumer retries
        # its batch, the API answers 503; the connection is not used again.
        with pytest.raises(DBAPIError) as raised:
            await session.execute(text("SELECT 1"))
        assert raised.value.connection_invalidated and is_transient_database_error(raised.value)
    async with resources.sessions() as session:  # the next use of the pool works, on a new session
        assert await session.scalar(text("SELECT pg_backend_pid()")) != pid


async def test_a_transaction_that_keeps_working_is_not_ended(resources: Resources):
    async with resources.sessions() as session, session.begin():
        for _ in range(6):  # 1.2 s in all, never 0.5 s idle
            await asyncio.sleep(0.2)
            assert await session.scalar(text("SELECT 1")) == 1


async def test_no_limit_unless_the_services_set_one():
    # Migrations and ticketctl build their engine without it (long DDL, a wait for an advisory
    # lock), and 0 switches it off for the services.
    settings = CommonSettings(database_url=POSTGRES_URL or "", database_idle_in_transaction_timeout_s=0)
    opened = await open_resources(settings, broker_required=False)
    try:
        async with opened.engine.connect() as connection:
            assert await connection.scalar(text("SHOW idle_in_transaction_session_timeout")) == "0"
    finally:
        await opened.engine.dispose()
