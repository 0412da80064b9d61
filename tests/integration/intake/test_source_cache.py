"""The webhook path's source cache: one read per source however many requests ask at once, reads
ahead of expiry, and an invalidation is never undone by a read that started before it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.intake.models import RetiredSourceName, Source
from services.intake.sources.cache import SourceCache


class CountingSessions:
    """A session factory that counts the sessions opened, and can hold each one back; ``first``
    runs before the first session is opened (to make that read fail or hang)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        first: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.first = first
        self.opened = 0
        self.gate: asyncio.Event | None = None

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        self.opened += 1
        if self.opened == 1 and self.first is not None:
            await self.first()
        if self.gate is not None:
            await self.gate.wait()
        async with self.sessions() as session:
            yield session


@pytest.fixture
async def source(sessions: async_sessionmaker[AsyncSession]) -> str:
    name = f"cache-{uuid.uuid4().hex[:8]}"
    async with sessions() as session:
        session.add(Source(name=name, adapter="github", secrets=["whsec-0123456789abcdef"], options={}))
        await session.commit()
    return name


async def _rename_secret(sessions: async_sessionmaker[AsyncSession], name: str, secret: str) -> None:
    async with sessions() as session:
        await session.execute(update(Source).where(Source.name == name).values(secrets=[secret]))
        await session.commit()


def _cache(counting: CountingSessions, ttl_s: float) -> SourceCache:
    return SourceCache(counting, ttl_s)  # type: ignore[arg-type]  # a session factory in all but name


async def test_a_burst_of_requests_on_a_cold_cache_reads_the_source_once(
    sessions: async_sessionmaker[AsyncSession], source: str
) -> None:
    counting = CountingSessions(sessions)
    cache = _cache(counting, ttl_s=60)
    configs = await asyncio.gather(*(cache.get(source) for _ in range(50)))
    assert counting.opened == 1
    assert all(config is not None and config.name == source for config in configs)
    misses = await asyncio.gather(*(cache.get(f"{source}-unknown") for _ in range(20)))
    assert misses == [None] * 20 and counting.opened == 2


async def test_a_source_is_read_again_before_it_expires_without_a_request_waiting(
    sessions: async_sessionmaker[AsyncSession], source: str
) -> None:
    counting = CountingSessions(sessions)
    cache = _cache(counting, ttl_s=0.4)
    first = await cache.get(source)
    assert first is not None and first.secrets == ["whsec-0123456789abcdef"]
    await _rename_secret(sessions, source, "whsec-rotated-0123456789")
    await asyncio.sleep(0.25)  # past half of its time: still served, and read again behind it
    counting.gate = asyncio.Event()  # the read ahead is held: the request must not wait for it
    served = await asyncio.wait_for(cache.get(source), timeout=0.1)
    assert served is not None and served.secrets == ["whsec-0123456789abcdef"]
    assert counting.opened == 2
    counting.gate.set()
    for _ in range(50):
        await asyncio.sleep(0.01)
        refreshed = await cache.get(source)
        if refreshed is not None and refreshed.secrets == ["whsec-rotated-0123456789"]:
            break
    else:
        raise AssertionError("the read ahead was not kept")
    assert counting.opened == 2


async def test_an_invalidation_is_not_undone_by_a_read_that_started_before_it(
    sessions: async_sessionmaker[AsyncSession], source: str
) -> None:
    counting = CountingSessions(sessions)
    cache = _cache(counting, ttl_s=60)
    counting.gate = asyncio.Event()
    before: asyncio.Future[Any] = asyncio.ensure_future(cache.get(source))  # a read in flight
    await asyncio.sleep(0.01)
    await _rename_secret(sessions, source, "whsec-changed-0123456789")
    cache.invalidate(source)  # as the admin API does after its commit
    counting.gate.set()
    await before
    after = await cache.get(source)
    assert after is not None and after.secrets == ["whsec-changed-0123456789"]
    assert counting.opened == 2


async def test_a_failed_read_reaches_every_request_waiting_for_it_and_the_next_read_is_fresh(
    sessions: async_sessionmaker[AsyncSession], source: str
) -> None:
    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise ConnectionError("database away")

    counting = CountingSessions(sessions, first=fails)
    cache = _cache(counting, ttl_s=60)
    results = await asyncio.gather(*(cache.get(source) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    assert (await cache.get(source)) is not None
    assert counting.opened == 2


async def test_a_read_that_started_a_ttl_ago_is_not_joined(
    sessions: async_sessionmaker[AsyncSession], source: str
) -> None:
    counting = CountingSessions(sessions, first=asyncio.Event().wait)  # a read that never answers
    cache = _cache(counting, ttl_s=0.2)
    hung = asyncio.ensure_future(cache.get(source))
    await asyncio.sleep(0.3)
    config = await asyncio.wait_for(cache.get(source), timeout=2)  # a new read, not the hung one
    assert config is not None and config.name == source and counting.opened == 2
    hung.cancel()


async def test_a_source_and_whether_its_name_is_retired_are_one_statement(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], source: str
) -> None:
    """POST /v1/tickets refuses a deleted source's name too: the read that finds a source also
    finds its retired name, so neither the webhooks nor the tickets pay a second round trip."""
    retired = f"{source}-retired"
    async with sessions() as session:
        session.add(RetiredSourceName(name=retired))
        await session.commit()
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])  # (conn, cursor, statement, ...)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        cache = SourceCache(sessions, ttl_s=60)
        names = (source, retired, f"{source}-free")
        assert [await cache.reserved(name) for name in names] == ["configured", "retired", None]
        config = await cache.get(source)
        assert config is not None and config.name == source
        assert await cache.get(retired) is None
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(statements) == len(names), statements
