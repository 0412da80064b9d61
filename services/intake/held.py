"""Intake's own database connections for its per-request statements, held between uses.

The delivery ledger and the outbox gate run one small statement at a time, many times a second.
Through the shared pool each use paid a checkout, the pool's pre-ping (BEGIN, ping, ROLLBACK on
PostgreSQL), a rollback on check-in and, on SQLite, hand-offs to aiosqlite's thread for each of
those: more CPU than the statement. These connections are in autocommit (one statement is atomic
by itself), stay checked out between uses and are given to the caller as the driver's own
connection (asyncpg's or aiosqlite's). Instead of a ping, a statement whose connection PostgreSQL
dropped is tried once more on a new one: a restarted server leaves the held connections dead.

Their commits on PostgreSQL are asynchronous (``synchronous_commit=off``): the server answers
before the commit's WAL reaches the disk, and a crash of the server can forget the last fraction
of a second of them. The one statement here that writes is the ledger's record of a delivery id,
made after the broker acknowledged the events; a record lost that way only lets a redelivery
publish the same event ids again, as a record that fails does (services/intake/publisher.py).
Waiting for the flush made a batch's round trip 1.4-1.7 times as long (in-process, 8 deliveries:
600 against 420 µs with per-execution plans, 470 against 280 µs with a kept plan), and lookups wait
for records in the same statement. Parked events (the outbox) commit through the shared pool,
synchronously.

The ledger's connections let PostgreSQL plan a statement once and keep the plan for a second
(``plan_cache_mode=force_generic_plan``; asyncpg prepares a statement again once it is
:data:`REPLAN_AFTER_S` old): planning the lookup at every execution had cost PostgreSQL about 100 µs
a batch, as much CPU as running the whole statement. The rest of the services plan every
execution (shared/db/engine.py) because a plan cached for the life of a connection keeps the
statistics of its moment; a plan here is made again every second, for the table's size then.
They also rule out scanning the table (``enable_seqscan=off``): a lookup is by the primary key
whatever the statistics say. A plan made while the table was new (a new install) hashed the whole
table for every batch and was kept for that second, as thousands of deliveries went in: three times
the statement's CPU then. The outbox gate plans every execution, as everywhere else: it reads the
outbox, a queue table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asyncpg.exceptions import (
    InterfaceError,
    OperatorInterventionError,
    PostgresConnectionError,
    QueryCanceledError,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.db.engine import create_engine, is_sqlite

log = logging.getLogger(__name__)

# A server that hangs without closing its connections turns into 503s, not requests queued for good.
# On SQLite the statement still finishes in aiosqlite's thread (its busy_timeout bounds it), and
# discarding the connection waits for that. On PostgreSQL a statement given up on would run on in
# the server, holding its locks: the server's statement_timeout on these connections is a second
# shorter (or the services' own, DATABASE_STATEMENT_TIMEOUT_S, when that is shorter still), so
# that a slow statement ends with the server's cancel, which keeps the connection, and the
# client's bound is left for a server that does not answer at all.
STATEMENT_TIMEOUT_S = 10.0
SERVER_STATEMENT_TIMEOUT_S = STATEMENT_TIMEOUT_S - 1.0
REPLAN_AFTER_S = 1.0
R = TypeVar("R")


def ledger_connections(
    database_url: str, *, connect_timeout_s: float | None = None, statement_timeout_s: float | None = None
) -> HeldConnections:
    """One batch at a time (services/intake/ledger.py), its statements kept planned for
    :data:`REPLAN_AFTER_S` on PostgreSQL. On SQLite the ledger runs its statements on the event
    loop's thread, where they must never wait: not for another connection's write lock (the batch
    then goes to the connection's own thread and waits there) nor for a checkpoint's flush to disk
    (the ledger checkpoints on that thread itself)."""
    reuse_plans = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}
    # synchronous=NORMAL: no flush to disk at a commit, on that thread. A record the broker's
    # acknowledgement preceded may be lost to a power loss, as to a crash of PostgreSQL (its
    # asynchronous commit): a redelivery is then published again, under the same event ids.
    never_wait = {"busy_timeout": "0", "wal_autocheckpoint": "0", "synchronous": "NORMAL"}
    return held_connections(
        database_url,
        1,
        reuse_plans,
        sqlite=never_wait,
        connect_timeout_s=connect_timeout_s,
        statement_timeout_s=statement_timeout_s,
        max_cached_statement_lifetime=REPLAN_AFTER_S,
    )


def gate_connections(
    database_url: str, *, connect_timeout_s: float | None = None, statement_timeout_s: float | None = None
) -> HeldConnections:
    """One read at a time (services/intake/outbox_gate.py)."""
    return held_connections(
        database_url, 1, {}, connect_timeout_s=connect_timeout_s, statement_timeout_s=statement_timeout_s
    )


def held_connections(
    database_url: str,
    users: int,
    settings: dict[str, str],
    *,
    sqlite: dict[str, str] | None = None,
    connect_timeout_s: float | None = None,
    statement_timeout_s: float | None = None,
    **driver: Any,
) -> HeldConnections:
    """Up to ``users`` connections kept, PostgreSQL ``settings`` on top of the services' own,
    SQLite pragmas (``sqlite``) on top of theirs, and keyword arguments for asyncpg's ``connect``.
    ``connect_timeout_s`` bounds opening one (PostgreSQL): a statement's own bound
    (:data:`STATEMENT_TIMEOUT_S`) starts only once it has a connection. ``statement_timeout_s``
    is the services' bound on a statement in the server (shared.db.engine.create_engine; None or
    0: none); these connections' is the shorter of it and :data:`SERVER_STATEMENT_TIMEOUT_S`."""
    # The server ends a statement before :meth:`HeldConnections.call` gives up on it: with the
    # services' 30 s, one given up on ran on in PostgreSQL for up to 20 s more, holding the locks
    # it took (a ledger record's), its connection already discarded.
    statement_timeout_s = min(statement_timeout_s or SERVER_STATEMENT_TIMEOUT_S, SERVER_STATEMENT_TIMEOUT_S)
    postgres: dict[str, Any] = {}
    if not is_sqlite(database_url):
        server_settings = {"synchronous_commit": "off", **settings}
        postgres["connect_args"] = {"server_settings": server_settings, **driver}
    engine = create_engine(
        database_url,
        **postgres,
        sqlite_pragmas=sqlite,
        connect_timeout_s=connect_timeout_s,
        statement_timeout_s=statement_timeout_s,
        pool_size=users,
        max_overflow=users,
        pool_pre_ping=False,  # a failed statement is retried on a new connection instead
        pool_reset_on_return=None,  # autocommit: there is never a transaction to roll back
        isolation_level="AUTOCOMMIT",
    )
    return HeldConnections(engine, users)


class HeldConnections:
    def __init__(self, engine: AsyncEngine, users: int) -> None:
        """Made by :func:`held_connections`; keeps up to ``users`` connections between uses (more
        are opened for a burst, then closed). :meth:`close` disposes of ``engine``."""
        self.engine = engine
        self.users = users
        self.postgres = engine.dialect.name == "postgresql"
        self._idle: list[tuple[AsyncConnection, Any]] = []  # each with its driver connection
        self._closed = False

    async def call(self, statement: Callable[[Any], Awaitable[R]]) -> R:
        """``statement(driver connection)``, within :data:`STATEMENT_TIMEOUT_S`. When PostgreSQL
        dropped the connection it is made once more, on a new one."""
        if self._closed:  # a read ahead started during the shutdown: no connection opened for it
            raise ConnectionError("intake's database connections are closed")
        connection, driver = self._idle.pop() if self._idle else await self._connect()
        try:
            return await self._run(connection, driver, statement)
        except Exception as exc:
            if not (self.postgres and _connection_lost(driver, exc)):
                raise
        # A restarted server dropped every connection: the held ones are dead too.
        while self._idle:
            await _discard(self._idle.pop()[0])
        log.info("the database dropped a connection; trying the statement on a new one")
        connection, driver = await self._connect()
        return await self._run(connection, driver, statement)

    async def fetch(self, sql: str, params: list[Any]) -> list[Any]:
        """The rows of ``sql`` with ``params`` (asyncpg: one per ``$n``; SQLite: one per ``?``)."""
        if self.postgres:
            return await self.call(lambda driver: driver.fetch(sql, *params))
        return list(await self.call(lambda driver: driver.execute_fetchall(sql, params)))

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            await _discard(self._idle.pop()[0])
        await self.engine.dispose()

    async def _run(
        self, connection: AsyncConnection, driver: Any, statement: Callable[[Any], Awaitable[R]]
    ) -> R:
        try:
            async with asyncio.timeout(STATEMENT_TIMEOUT_S):
                result = await statement(driver)
        except Exception as exc:
            # Asked on PostgreSQL only: aiosqlite's connection has no is_closed (the AttributeError
            # left the connection checked out, and two of them emptied the pool).
            refused = (
                self.postgres and not isinstance(exc, TimeoutError) and not _connection_lost(driver, exc)
            )
            if refused:  # the server answered: the connection is fine
                await self._keep(connection, driver)
            else:  # a silent path (a NAT's idle timeout) would time out every later statement too
                await _discard(connection)
            raise
        except BaseException:  # cancelled mid-statement: the protocol's state is unknown
            await _discard(connection)
            raise
        await self._keep(connection, driver)
        return result

    async def _keep(self, connection: AsyncConnection, driver: Any) -> None:
        if self._closed or len(self._idle) >= self.users:  # closed meanwhile, or an overflow connection
            await _discard(connection)
        else:
            self._idle.append((connection, driver))

    async def _connect(self) -> tuple[AsyncConnection, Any]:
        connection = await self.engine.connect()
        try:
            return connection, (await connection.get_raw_connection()).driver_connection
        except BaseException:
            await _discard(connection)
            raise


def _connection_lost(driver: Any, exc: Exception) -> bool:
    """Whether asyncpg's connection is gone (closed, reset, or the server shutting down), as
    opposed to one statement refused or timed out (a QueryCanceledError, of the server-shutdown
    class, is the server's statement_timeout: retried, it would wait out its bound twice)."""
    if isinstance(exc, TimeoutError | QueryCanceledError):
        return False
    return driver.is_closed() or isinstance(
        exc, OSError | InterfaceError | PostgresConnectionError | OperatorInterventionError
    )


async def _discard(connection: AsyncConnection) -> None:
    with contextlib.suppress(Exception):
        await connection.invalidate()
    with contextlib.suppress(Exception):
        await connection.close()
