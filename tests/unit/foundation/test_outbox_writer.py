"""OutboxWriter's ``dirty`` mark when tasks share the writer (the router's batch handler and its
escalation scanner): one relay at a time, and a mark made during a relay survives it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.db import outbox
from shared.db.engine import create_engine, session_factory
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
