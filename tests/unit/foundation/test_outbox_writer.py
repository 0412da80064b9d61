"""OutboxWriter's ``dirty`` mark when tasks share the writer (the router's batch handler and its
escalation scanner): one relay at a time, and a mark made during a relay survives it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import outbox
from shared.db.base import Base
from shared.db.engine import create_engine, session_factory
from shared.db.models import OutboxMessage
from shared.db.outbox import OutboxWriter


@pytest.fixture
async def writer() -> AsyncIterator[OutboxWriter]:
    engine = create_engine("sqlite+aiosqlite:///:memory:")  # never connected: relay_once is replaced
    yield OutboxWriter(session_factory(engine), producer=None, owner="router", dirty=True)
    await engine.dispose()


async def test_a_mark_made_while_relaying_keeps_the_writer_dirty(writer, monkeypatch) -> None:
    rounds = []

    async def relay_once(sessions, producer, owner):
        rounds.append(owner)
        if len(rounds) == 1:
            writer.dirty = True  # another task's publish failed meanwhile: its rows may be missed
        return 0

    monkeypatch.setattr(outbox, "relay_once", relay_once)
    await writer.relay_leftovers()
    assert writer.dirty  # so the next call relays again
    await writer.relay_leftovers()
    assert not writer.dirty and len(rounds) == 2
    await writer.relay_leftovers()
    assert len(rounds) == 2  # clean: nothing to relay


async def test_tasks_sharing_the_writer_relay_one_at_a_time(writer, monkeypatch) -> None:
    running, most = 0, 0

    async def relay_once(sessions, producer, owner):
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return 0

    monkeypatch.setattr(outbox, "relay_once", relay_once)
    await asyncio.gather(writer.relay_leftovers(), writer.relay_leftovers())
    assert most == 1 and not writer.dirty


async def test_a_commit_whose_answer_was_lost_leaves_the_writer_dirty(tmp_path, monkeypatch) -> None:
    """The server committed, the reply never came: the batch's retry finds its events done and
    writes nothing, so only a relay publishes the committed rows, and the writer must know to."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    writer = OutboxWriter(session_factory(engine), producer=None, owner="router", dirty=False)
    commit = AsyncSession.commit

    async def commit_then_lose_the_answer(self: AsyncSession) -> None:
        await commit(self)
        raise OperationalError("COMMIT", {}, ConnectionResetError("connection lost"))

    async def store(session: AsyncSession) -> list[OutboxMessage]:
        row = OutboxMessage(owner="router", topic="routing", key="k", value=b"{}")
        session.add(row)
        await session.flush()
        return [row]

    monkeypatch.setattr(AsyncSession, "commit", commit_then_lose_the_answer)
    try:
        with pytest.raises(OperationalError):
            await writer.commit_then_publish(store)
    finally:
        monkeypatch.undo()
    assert writer.dirty
    async with session_factory(engine)() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    await engine.dispose()
