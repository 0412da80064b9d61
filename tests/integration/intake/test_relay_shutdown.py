"""A stopping intake cancels its outbox relay and waits for it to end. The relay's cancellation was
lost in three ways, and the relay then ran on, and the shutdown waited for it, for good: it was
forwarded to the task that keeps the lock's session active, which could end normally instead
(Python 3.11's ``wait_for`` returns a result that arrives with a cancellation); a park waking the
relay as it was cancelled did the same to its own ``wait_for``; and a round whose statement turned
the cancellation into a database error (a rollback in a ``finally`` while the database is away)
was taken for a failed round. Whatever the cause, a background task that does not end is left
behind after a bound, so the shutdown still closes the producer and the pool."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.held import gate_connections, ledger_connections
from services.intake.publisher import EventPublisher, _LockKeeper
from shared import runtime
from tests.cancelling import CancellationTurnedIntoError, ends_when_cancelled
from tests.integration.intake.helpers import running_intake
from tests.integration.intake.test_relay_lock_idle import SlowBroker

STEPS = range(12)  # loop iterations before the cancellation: the race is a few of them wide
ENDS_WITHIN_S = 5.0


async def _cancelled_in_time(task: asyncio.Task[None]) -> bool:
    return await ends_when_cancelled(task, ENDS_WITHIN_S)


async def test_a_relay_cancelled_while_it_stops_its_lock_keeper_ends(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    missed: list[int] = []
    landed = 0
    async with sessions() as session:
        for steps in STEPS:
            keeper = _LockKeeper(session, idle_limit_s=60.0)

            async def drain_ends(keeper: _LockKeeper = keeper) -> None:
                async with keeper:
                    await asyncio.sleep(0)  # the keeper waits out its period

            relay = asyncio.create_task(drain_ends())
            for _ in range(steps):
                await asyncio.sleep(0)
            if relay.done():  # ended before the cancellation: later ones would too
                break
            landed += 1
            if not await _cancelled_in_time(relay):
                missed.append(steps)
    assert landed > 2  # the cancellation met the relay at several points of its stop
    assert not missed, f"the relay ran on after its cancellation, cancelled after {missed} steps"


@pytest.fixture
async def publisher(
    database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[EventPublisher]:
    ledger, gate = ledger_connections(database_url), gate_connections(database_url)
    owner = "stop-" + uuid.uuid4().hex[:12]
    yield EventPublisher(SlowBroker(), sessions, ledger, gate, "t", 1.0, owner=owner)
    await ledger.close()
    await gate.close()


async def _waiting_relay(publisher: EventPublisher, monkeypatch: pytest.MonkeyPatch) -> asyncio.Task[None]:
    """A relay that finished a round and waits for a park to wake it (poll: 30 s)."""
    round_done = asyncio.Event()
    relay_once = publisher.relay_once

    async def counted() -> int:
        sent = await relay_once()
        round_done.set()
        return sent

    monkeypatch.setattr(publisher, "relay_once", counted)
    relay = asyncio.create_task(publisher.relay_forever(30.0))
    await asyncio.wait_for(round_done.wait(), ENDS_WITHIN_S)
    await asyncio.sleep(0.3)  # past its minimum gap between rounds (0.05 s)
    return relay


async def test_a_relay_cancelled_as_a_park_wakes_it_ends(
    publisher: EventPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    missed: list[int] = []
    for steps in STEPS:
        relay = await _waiting_relay(publisher, monkeypatch)
        publisher._wake.set()  # what a park does
        for _ in range(steps):
            await asyncio.sleep(0)
        if not await _cancelled_in_time(relay):
            missed.append(steps)
    assert not missed, f"the relay ran on after its cancellation, cancelled after {missed} steps"


async def test_a_relay_whose_round_turns_its_cancellation_into_an_error_ends(
    publisher: EventPublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    round_on_a_database_going_away = CancellationTurnedIntoError()
    monkeypatch.setattr(publisher, "relay_once", round_on_a_database_going_away)
    relay = asyncio.create_task(publisher.relay_forever(0.2))
    await asyncio.wait_for(round_on_a_database_going_away.started.wait(), ENDS_WITHIN_S)
    assert await _cancelled_in_time(relay), (
        f"the relay ran on after its cancellation ({round_on_a_database_going_away.calls} rounds)"
    )


async def test_intake_stops_in_bounded_time_even_past_a_relay_that_does_not_end(
    settings_kwargs: dict[str, object], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = asyncio.Event()

    async def relay_losing_its_cancellations(_self: EventPublisher, _poll_s: float) -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                pass

    monkeypatch.setattr(EventPublisher, "relay_forever", relay_losing_its_cancellations)
    monkeypatch.setattr(runtime, "TASK_STOP_TIMEOUT_S", 0.5)
    running = running_intake(database_url=database_url, **settings_kwargs)
    await running.__aenter__()
    began = time.monotonic()
    stopping = asyncio.create_task(running.__aexit__(None, None, None))
    done, _ = await asyncio.wait({stopping}, timeout=15)
    took = time.monotonic() - began
    release.set()  # let a shutdown that waits for it end: the test fails rather than hangs
    await stopping
    assert done, "the shutdown waited for the relay"
    assert took < 4  # the bound (0.5 s here), the ledger, gate, producer and pool closed
