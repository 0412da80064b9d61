"""PostgreSQL round trips a checkout and the outbox pay: a connection used a moment ago is not
pinged (an asyncpg ping is BEGIN, an empty query and ROLLBACK), an idle one is, and a dead one
is replaced either way; the outbox's delete commits itself."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import create_engine, session_factory
from shared.db.liveness import ping_when_idle
from shared.db.models import OutboxMessage
from shared.db.outbox import OutboxWriter, insert_outbox, pending_message
from shared.events import EventType, TicketSnapshot, ticket_event
from shared.http.problems import install_problem_handlers
from tests.integration.foundation.test_router_batches import RecordingProducer

PING = ["BEGIN", ";", "ROLLBACK"]  # SQLAlchemy's asyncpg ping, in a transaction for PgBouncer
KEPT = {"BEGIN", "COMMIT", "ROLLBACK"}


@pytest.fixture
def postgres_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's round trips (create_engine pings no SQLite connection)")
    return database_url


def log_queries(engine: AsyncEngine) -> list[str]:
    """The simple-protocol queries every new connection of ``engine`` sends from now on (BEGIN,
    COMMIT, the ping; prepared statements are not logged)."""
    queries: list[str] = []

    @event.listens_for(engine.sync_engine.pool, "connect")
    def _log(_dbapi_connection: Any, record: Any) -> None:
        record.driver_connection.add_query_logger(lambda logged: queries.append(logged.query))

    return queries


def control(queries: list[str]) -> list[str]:
    """The transaction control and pings among ``queries`` (not asyncpg's type introspection)."""
    words = [";" if q == ";" else q.split(" ")[0].rstrip(";") for q in queries]
    return [word for word in words if word == ";" or word in KEPT]


async def backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")))


async def terminate(url: str, pid: int) -> None:
    other = create_engine(url, pool_pre_ping=False)
    try:
        async with other.connect() as connection:
            assert await connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()


@pytest.fixture
async def idle_pinged(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose connections are pinged after 50 ms idle."""
    engine = create_engine(postgres_url, pool_pre_ping=False, pool_size=1)
    ping_when_idle(engine, idle_s=0.05)
    yield engine
    await engine.dispose()


async def test_a_connection_used_moments_ago_is_not_pinged(postgres_url: str):
    engine = create_engine(postgres_url)  # the services' engine
    queries = log_queries(engine)
    try:
        first = await backend_pid(engine)
        for _ in range(3):
            assert await backend_pid(engine) == first
        assert control(queries) == ["BEGIN", "ROLLBACK"] * 4  # each checkout's read; no ping
    finally:
        await engine.dispose()


async def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(
    postgres_url: str, idle_pinged: AsyncEngine
) -> None:
    queries = log_queries(idle_pinged)
    first = await backend_pid(idle_pinged)
    await asyncio.sleep(0.1)
    assert await backend_pid(idle_pinged) == first  # alive: pinged, kept
    assert control(queries) == ["BEGIN", "ROLLBACK", *PING, "BEGIN", "ROLLBACK"]
    await terminate(postgres_url, first)
    await asyncio.sleep(0.1)
    # The ping finds it dead: the caller gets a new connection and never sees the error.
    assert await backend_pid(idle_pinged) != first


async def test_a_connection_that_died_within_the_window_fails_once_then_the_pool_recovers(postgres_url: str):
    engine = create_engine(postgres_url, pool_pre_ping=False, pool_size=2)
    ping_when_idle(engine, idle_s=60.0)
    try:
        first = await backend_pid(engine)
        await terminate(postgres_url, first)
        with pytest.raises(DBAPIError) as failed:
            await backend_pid(engine)
        assert failed.value.connection_invalidated
        assert await backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_an_api_request_on_a_connection_that_died_within_the_window_is_answered_503(postgres_url: str):
    engine = create_engine(postgres_url, pool_size=1, max_overflow=0)  # the services' engine
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/pid")
    async def pid() -> int:
        return await backend_pid(engine)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            first = (await client.get("/pid")).json()
            await terminate(postgres_url, first)  # a restart, within the window: no ping
            failed = await client.get("/pid")
            assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
            retried = await client.get("/pid")
            assert retried.status_code == 200 and retried.json() != first
    finally:
        await engine.dispose()


async def test_the_outbox_delete_commits_itself_in_one_round_trip(postgres_url: str):
    engine = create_engine(postgres_url)
    queries = log_queries(engine)
    sessions = session_factory(engine)
    producer = RecordingProducer()
    writer = OutboxWriter(sessions, producer, f"owner-{uuid.uuid4().hex[:8]}", dirty=False)
    events = [
        ticket_event(EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=f"rt-{n}", subject="s"))
        for n in range(3)
    ]

    async def store(session: Any) -> list[Any]:
        rows = [pending_message(writer.owner, "routing", e) for e in events]
        await insert_outbox(session, rows)
        return rows

    try:
        await backend_pid(engine)  # connected and used: the checkout below needs no ping
        queries.clear()
        await writer.commit_then_publish(store)
        # The batch's own transaction; then the delete with no BEGIN or COMMIT of its own.
        assert control(queries) == ["BEGIN", "COMMIT"]
        assert [e.event_id for e in producer.sent] == [e.event_id for e in events]
        async with sessions() as session:
            left = await session.scalars(select(OutboxMessage.id).where(OutboxMessage.owner == writer.owner))
            assert left.all() == []
        # The connection went back to the pool in transactions again, not autocommit.
        async with sessions() as session, session.begin():
            await session.execute(text("SELECT 1"))
        assert control(queries)[-2:] == ["BEGIN", "COMMIT"]
    finally:
        await engine.dispose()
