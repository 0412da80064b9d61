"""The services' PostgreSQL statements are bounded: by the server (``statement_timeout``) and, for a
link that stopped answering, by asyncpg (``command_timeout``, a little later). Before, a
black-holed database held a consumer batch for the kernel's TCP timeout (~15 min). Migrations
keep no bound: they run long DDL and wait for each other's advisory lock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import engine as engine_module
from shared.db.engine import create_engine
from shared.db.errors import is_statement_timeout, is_transient_database_error
from shared.db.migrate import current_heads, expected_heads, upgrade
from shared.db.scratch import create_database, drop_database
from shared.kafka.consumer import is_transient
from shared.runtime import open_resources
from shared.settings import CommonSettings
from tests.conftest import POSTGRES_URL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL not set"),
]


@pytest.fixture
async def bounded() -> AsyncIterator[AsyncEngine]:
    assert POSTGRES_URL
    engine = create_engine(POSTGRES_URL, statement_timeout_s=0.3)
    yield engine
    await engine.dispose()


async def test_a_statement_beyond_the_timeout_is_cancelled_by_the_server(bounded: AsyncEngine):
    started = time.monotonic()
    async with bounded.connect() as connection:
        with pytest.raises(DBAPIError) as raised:
            await connection.execute(text("SELECT pg_sleep(5)"))
    assert time.monotonic() - started < 3
    # "canceling statement due to statement timeout": its message's failure, dead-lettered after
    # CONSUMER_MAX_ATTEMPTS (shared/db/errors.py).
    assert getattr(raised.value.orig, "sqlstate", None) == "57014"
    assert is_statement_timeout(raised.value) and not is_transient(raised.value)
    async with bounded.connect() as connection:  # the connection was not lost with the statement
        assert await connection.scalar(text("SELECT pg_sleep(0.05)::text || 'done'")) == "done"


async def test_a_server_that_does_not_answer_is_given_up_on_by_the_client(
    bounded: AsyncEngine, monkeypatch: pytest.MonkeyPatch
):
    # The server's own bound switched off in the session stands for a link that went silent: only
    # asyncpg's command_timeout (the statement timeout plus a margin) ends the wait.
    monkeypatch.setattr(engine_module, "COMMAND_TIMEOUT_MARGIN_S", 0.3)
    assert POSTGRES_URL
    engine = create_engine(POSTGRES_URL, statement_timeout_s=0.3)
    try:
        started = time.monotonic()
        async with engine.connect() as connection:
            await connection.execute(text("SET statement_timeout = 0"))
            with pytest.raises(OperationalError) as raised:
                await connection.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 3
        # As any moment the database is away: retried without limit, 503 to an API client; the
        # connection, in an unknown state, is not used again.
        assert is_transient(raised.value) and is_transient_database_error(raised.value)
        assert raised.value.connection_invalidated
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_the_services_engine_takes_its_timeout_from_the_settings():
    settings = CommonSettings(database_url=POSTGRES_URL or "", database_statement_timeout_s=1.5)
    resources = await open_resources(settings, broker_required=False)
    try:
        async with resources.engine.connect() as connection:
            assert await connection.scalar(text("SHOW statement_timeout")) == "1500ms"
    finally:
        await resources.engine.dispose()


def test_migrations_keep_no_statement_timeout(monkeypatch: pytest.MonkeyPatch):
    # Whatever bound the services are given: a migration's DDL may run long, and a run waits for
    # another's advisory lock (migrations/env.py). Under a 1 ms bound they would fail.
    monkeypatch.setenv("DATABASE_STATEMENT_TIMEOUT_S", "0.001")
    assert POSTGRES_URL
    url = asyncio.run(create_database(POSTGRES_URL, "tr_timeout"))
    try:
        upgrade(url)
        assert asyncio.run(current_heads(url)) == expected_heads(url)
    finally:
        asyncio.run(drop_database(url))
