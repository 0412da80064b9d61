"""The outbox relay holds its PostgreSQL advisory lock on a session of its own for a whole drain,
which waits for the broker's acknowledgements wave after wave. That session ran no statement
meanwhile: idle in its transaction for as long as the drain, so an
``idle_in_transaction_session_timeout`` (the services' own, or one a DBA sets for the role or the
database) ended it mid-drain, handed the lock to another replica and failed the round."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import publisher as publisher_module
from services.intake.held import gate_connections, ledger_connections
from services.intake.publisher import EventPublisher
from shared.db.engine import create_engine, is_sqlite, session_factory
from shared.db.models import OutboxMessage
from shared.db.outbox import outbox_row
from shared.events import EventType, TicketSnapshot, ticket_event

IDLE_LIMIT_MS = 600
ACK_AFTER_S = 0.3  # each wave's acknowledgement: four waves outlast the limit twice over


class _Client:
    async def fetch_all_metadata(self) -> None:  # the relay's reachability check
        return None


class SlowBroker:
    """A producer whose every send is acknowledged ``ACK_AFTER_S`` later."""

    def __init__(self) -> None:
        self.client = _Client()
        self.sent = 0

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def ack() -> None:
            self.sent += 1
            future.set_result(None)

        loop.call_later(ACK_AFTER_S, ack)
        return future


@pytest.fixture
async def limited(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The services' engine under a small idle-in-transaction limit, as a DBA may set one."""
    if is_sqlite(database_url):
        pytest.skip("PostgreSQL's session limit")
    engine = create_engine(
        database_url,
        connect_args={"server_settings": {"idle_in_transaction_session_timeout": str(IDLE_LIMIT_MS)}},
    )
    yield engine
    await engine.dispose()


async def _lock_free(engine: AsyncEngine) -> bool:
    """Whether another session can take the relay lock now (given back at once if so)."""
    key = publisher_module._RELAY_LOCK_KEY
    async with engine.connect() as connection:
        taken = bool(await connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
        if taken:
            await connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return taken


async def test_a_drain_longer_than_the_idle_limit_keeps_the_relay_lock(
    database_url: str, limited: AsyncEngine
) -> None:
    sessions = session_factory(limited)
    owner = "idle-" + uuid.uuid4().hex[:12]
    # One ticket's four events: four waves, each sent once the previous one was acknowledged.
    snapshot = TicketSnapshot(external_id=owner, subject="s")
    async with sessions() as session, session.begin():
        session.add_all(
            outbox_row(owner, "t", ticket_event(EventType.TICKET_UPDATED, "idle", snapshot)) for _ in range(4)
        )
    ledger, gate = ledger_connections(database_url), gate_connections(database_url)
    broker = SlowBroker()
    publisher = EventPublisher(broker, sessions, ledger, gate, "t", 5.0, owner=owner)
    try:
        relaying = asyncio.create_task(publisher.relay_once())
        await asyncio.sleep(ACK_AFTER_S * 3)  # well past the limit, mid-drain
        assert not relaying.done()
        assert not await _lock_free(limited)  # still this relay's: no other replica drains beside it
        assert await relaying == 4  # and the round ends well, its lock given back
        assert broker.sent == 4
        assert await _lock_free(limited)
        async with sessions() as session:
            left = await session.scalar(select(func.count()).where(OutboxMessage.owner == owner))
        assert left == 0
    finally:
        await ledger.close()
        await gate.close()


async def test_a_relay_that_lost_its_lock_session_stops_draining(
    database_url: str,
    limited: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One row per batch: the relay looks whether it still holds the lock before each.
    monkeypatch.setattr(publisher_module, "RELAY_BATCH", 1)
    sessions = session_factory(limited)
    owner = "lost-" + uuid.uuid4().hex[:12]
    async with sessions() as session, session.begin():
        session.add_all(
            outbox_row(
                owner,
                "t",
                ticket_event(
                    EventType.TICKET_UPDATED, "idle", TicketSnapshot(external_id=f"{owner}-{n}", subject="s")
                ),
            )
            for n in range(4)
        )
    ledger, gate = ledger_connections(database_url), gate_connections(database_url)
    broker = SlowBroker()
    publisher = EventPublisher(broker, sessions, ledger, gate, "t", 5.0, owner=owner)
    try:
        relaying = asyncio.create_task(publisher.relay_once())
        await asyncio.sleep(ACK_AFTER_S * 1.5)  # the second row is being sent
        # The lock's session is ended under it (what the limit does to a session it deems idle).
        async with limited.connect() as connection:
            ended = await connection.scalar(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND objid = :k AND granted"
                ),
                {"k": publisher_module._RELAY_LOCK_KEY},
            )
        assert ended
        sent = await relaying  # the round ends, the rows left for a later one
        assert sent == broker.sent < 4  # it stopped: another replica may be draining now
        assert "lost its lock's session" in caplog.text
        assert await _lock_free(limited)
    finally:
        await ledger.close()
        await gate.close()
