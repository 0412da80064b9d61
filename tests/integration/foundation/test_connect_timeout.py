"""A service's new PostgreSQL connection is given up on after ``DATABASE_CONNECT_TIMEOUT_S``.
Before, asyncpg waited its default 60 s: against a black-holed database each checkout that had to
connect (the pool's first, one after an invalidation, intake's ledger and gate connections) held
its request or batch that long.

The black hole is a local listener that accepts and never answers (asyncpg's handshake then
waits): a non-routable address behaves differently from one network to the next (here one
answers at once), so it would not show the bound reliably."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from services.intake.held import HeldConnections, gate_connections, ledger_connections
from shared.db.errors import is_transient_database_error
from shared.runtime import open_resources
from shared.settings import CommonSettings

BOUND_S = 0.5


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A PostgreSQL URL whose server takes the TCP connection and then says nothing."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # kept open, never written to

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"postgresql+asyncpg://u:p@127.0.0.1:{port}/db"
    for writer in held:
        writer.close()
    server.close()


async def test_the_services_engine_gives_up_connecting_after_the_bound(silent_url: str):
    settings = CommonSettings(database_url=silent_url, database_connect_timeout_s=BOUND_S)
    resources = await open_resources(settings, broker_required=False)
    try:
        started = time.monotonic()
        async with asyncio.timeout(10):  # asyncpg's own default would be 60 s
            with pytest.raises(OperationalError) as raised:
                async with resources.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        assert time.monotonic() - started < BOUND_S + 2
        assert is_transient_database_error(raised.value)  # the database away: 503, a batch retried
    finally:
        await resources.engine.dispose()


@pytest.mark.parametrize("make", [ledger_connections, gate_connections])
async def test_intakes_held_connections_give_up_connecting_after_the_bound(
    silent_url: str, make: Callable[..., HeldConnections]
):
    connections = make(silent_url, connect_timeout_s=BOUND_S)
    try:
        started = time.monotonic()
        async with asyncio.timeout(10):
            with pytest.raises(OperationalError):
                await connections.fetch("SELECT 1", [])
        assert time.monotonic() - started < BOUND_S + 2
    finally:
        await connections.close()


class _Recorded(Exception):
    pass


async def test_the_bound_reaches_asyncpgs_connect(monkeypatch: pytest.MonkeyPatch):
    settings = CommonSettings(database_url="postgresql://u:p@127.0.0.1/db", database_connect_timeout_s=7)
    resources = await open_resources(settings, broker_required=False)
    seen: dict[str, Any] = {}

    def connect(*_cargs: Any, **cparams: Any) -> None:
        seen.update(cparams)
        raise _Recorded  # no connection needed

    monkeypatch.setattr(resources.engine.sync_engine.dialect, "connect", connect)
    try:
        with pytest.raises(_Recorded):
            await resources.engine.connect()
    finally:
        await resources.engine.dispose()
    assert seen["timeout"] == 7
    assert CommonSettings().database_connect_timeout_s == 10  # default: well below asyncpg's 60 s
