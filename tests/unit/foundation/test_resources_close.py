"""Closing a service's resources is bounded: a producer whose broker stopped answering could hold
``stop`` (it flushes what it holds, each request waiting out its 30 s timeout) past the pod's
40 s grace period, and the process was killed before its database pool was closed."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer

from shared import runtime as runtime_module
from shared.auth import KeyCache
from shared.db.engine import create_engine, session_factory
from shared.runtime import Resources


class HungProducer:
    """Its broker black-holed: ``stop`` never returns."""

    def __init__(self) -> None:
        self.stopping = False

    async def stop(self) -> None:
        self.stopping = True
        await asyncio.Event().wait()


class DisposeSpy:
    def __init__(self) -> None:
        self.disposed = False

    async def dispose(self) -> None:
        self.disposed = True


async def test_a_producer_whose_stop_hangs_does_not_hold_the_shutdown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime_module, "PRODUCER_CLOSE_TIMEOUT_S", 0.2)
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    sessions = session_factory(engine)
    spy = DisposeSpy()
    producer = HungProducer()
    resources = Resources(
        engine=cast(Any, spy),
        sessions=sessions,
        producer=cast(AIOKafkaProducer, producer),
        keys=KeyCache(sessions),
    )
    try:
        started = time.monotonic()
        await asyncio.wait_for(resources.close(), timeout=5)
        assert time.monotonic() - started < 2
        assert producer.stopping
        assert spy.disposed  # the pool is closed all the same
        assert "producer did not stop" in caplog.text
    finally:
        await engine.dispose()


async def test_a_producer_that_stops_is_waited_for() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    sessions = session_factory(engine)
    stopped: list[bool] = []

    class Producer:
        async def stop(self) -> None:
            await asyncio.sleep(0.05)  # flushing what it held
            stopped.append(True)

    resources = Resources(
        engine=engine, sessions=sessions, producer=cast(AIOKafkaProducer, Producer()), keys=KeyCache(sessions)
    )
    await resources.close()
    assert stopped == [True]


class HungEngine:
    """A black-holed database: closing each pooled connection waits out asyncpg's command timeout
    (35 s by default, one connection after the other; measured through a frozen proxy)."""

    def __init__(self) -> None:
        self.disposing = False

    async def dispose(self) -> None:
        self.disposing = True
        await asyncio.Event().wait()


async def test_a_pool_whose_dispose_hangs_does_not_hold_the_shutdown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime_module, "PRODUCER_CLOSE_TIMEOUT_S", 0.3)
    monkeypatch.setattr(runtime_module, "ENGINE_CLOSE_TIMEOUT_S", 0.3)
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    sessions = session_factory(engine)
    hung_engine, producer = HungEngine(), HungProducer()
    resources = Resources(
        engine=cast(Any, hung_engine),
        sessions=sessions,
        producer=cast(AIOKafkaProducer, producer),
        keys=KeyCache(sessions),
    )
    try:
        started = time.monotonic()
        await asyncio.wait_for(resources.close(), timeout=5)
        # Both at once: the broker and the database may be away together (a network partition).
        assert time.monotonic() - started < 0.3 * 2
        assert hung_engine.disposing and producer.stopping
        assert "database pool did not close" in caplog.text
    finally:
        await engine.dispose()
