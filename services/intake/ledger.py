"""Delivery ids of concurrent requests, looked up and recorded in batches (group commit).

Per request, a lookup and a record each cost a pooled connection, a statement and a round trip:
at 32 webhooks in flight the intake process spent ~2 ms of CPU per delivery, much of it in the
database driver and connections opened beyond the pool. Here every request that asks while a
batch is in flight waits for the next one, which covers all of them: the batches grow with the
load, and a lone request waits for nobody.

A batch holds the lookups and the records asked for meanwhile. On PostgreSQL it is one statement
(the records in a data-modifying CTE, the lookups in its query), on the ledger's held
connection (services/intake/held.py), which skips the pool's checkout, ping and reset. A statement
of its own for each kind had cost the client twice the CPU (in-process, 8 deliveries a batch: 27 µs
per delivery against 14 µs) and a second round trip. The lookups of a batch do not see the
records of the same batch (one snapshot), and need not: a copy of a delivery that arrives while
it is being accepted waits for it in the process (``EventPublisher._accepting``), so its lookup is
in a later batch than its record.
SQLite has no data-modifying CTE: there a batch is a multi-row insert and a lookup (a join on the
primary key, see :func:`sqlite_lookup`), run on the event loop's thread (:meth:`DeliveryLedger._sqlite`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from services.intake.held import STATEMENT_TIMEOUT_S, HeldConnections
from services.intake.models import WebhookDelivery
from shared.events import utc_now

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (source, delivery id)
MAX_BATCH = 500  # SQLite: 5 parameters a row, far under its limit of 32,766
NOT_SEEN = object()  # a delivery id never accepted (None is a stored row without a digest)
# SQLite: a batch moves the WAL into the database file (on the connection's thread) once about this
# many pages were written to it since the last time, as SQLite's own automatic checkpoint would.
CHECKPOINT_AFTER_PAGES = 1000
_COLUMNS = "source, delivery_id, received_at, events, request_digest"

_PG_LOOKUP = (
    "SELECT source, delivery_id, request_digest FROM webhook_deliveries "
    "WHERE (source, delivery_id) IN (SELECT * FROM unnest($1::varchar[], $2::varchar[]))"
)


def _pg_record(first: int) -> str:
    """The insert of one array per column, from parameter ``$first`` on."""
    arrays = ", ".join(
        f"${first + n}::{kind}[]"
        for n, kind in enumerate(("varchar", "varchar", "timestamptz", "int", "varchar"))
    )
    return (
        f"INSERT INTO webhook_deliveries ({_COLUMNS}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
    )


_PG_RECORD = _pg_record(1)
_PG_RECORD_AND_LOOKUP = f"WITH recorded AS ({_pg_record(3)}) {_PG_LOOKUP}"


def sqlite_lookup(keys: int) -> str:
    """The stored rows of ``keys`` (source, delivery id) pairs. A join, not ``(source, delivery_id)
    IN (VALUES ...)``: SQLite scans the whole table for that (a row per delivery, kept for days:
    107 µs per key at 12k rows, against 1 µs through the primary key)."""
    pairs = ", ".join(["(?, ?)"] * keys)
    return (
        f"SELECT d.source, d.delivery_id, d.request_digest FROM (VALUES {pairs}) AS k "
        "JOIN webhook_deliveries AS d ON d.source = k.column1 AND d.delivery_id = k.column2"
    )


def sqlite_record(rows: int) -> str:
    """One statement for ``rows`` deliveries (atomic in autocommit, and one commit)."""
    values = ", ".join(["(?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO webhook_deliveries ({_COLUMNS}) VALUES {values} ON CONFLICT DO NOTHING"


T = TypeVar("T")
R = TypeVar("R")


class _Batcher(Generic[T, R]):
    """Runs ``work`` over the items queued while the previous call ran; each caller gets its
    item's result, or the batch's exception."""

    def __init__(self, work: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._work = work
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running is None:
            self._running = asyncio.create_task(self._drain())
            self._running.add_done_callback(self._drain_ended)
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._queue:
                # One more pass of the event loop: requests that reach the ledger in it (the rest of
                # a burst, those an acknowledgement woke) join this batch instead of the next one.
                # Batches that split a burst had split the broker's batches too: at 32 webhooks in
                # flight this took a quarter of the produce requests and of the database's CPU.
                await asyncio.sleep(0)
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    results = await self._work([item for item, _ in batch])
                except Exception as exc:  # every caller of the batch learns it (a 503 each)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        except BaseException:  # cancelled (the loop is closing): no caller waits for good
            self._cancel_waiting(batch)
            raise
        finally:
            self._running = None

    def _drain_ended(self, task: asyncio.Task[None]) -> None:
        if self._running is task:  # cancelled before its first step: its body never ran
            self._running = None
            self._cancel_waiting([])

    def _cancel_waiting(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        for _, future in [*batch, *self._queue]:
            future.cancel()
        self._queue = []


@dataclass(frozen=True)
class Record:
    key: Key
    events: int
    request_digest: str | None


class DeliveryLedger:
    def __init__(self, held: HeldConnections) -> None:
        self.held = held
        dialect = held.engine.dialect
        # SQLite keeps datetimes as text: the column's own conversion, as the ORM writes them.
        received_at = WebhookDelivery.__table__.c.received_at.type
        self._bind_time = received_at.dialect_impl(dialect).bind_processor(dialect)
        self._batches: _Batcher[Key | Record, object] = _Batcher(self._run)
        # The first batch checkpoints: its write may create the WAL, which flushes it to disk.
        self._pages_since_checkpoint = CHECKPOINT_AFTER_PAGES

    async def accepted(self, source: str, delivery_id: str) -> object:
        """The request digest stored with the delivery id (None: stored without one), or
        :data:`NOT_SEEN`. Raises when the database cannot be read."""
        return await self._batches.submit((source, delivery_id))

    async def record(self, source: str, delivery_id: str, events: int, request_digest: str | None) -> None:
        """Store the delivery id (kept as it is when a concurrent request stored it first)."""
        await self._batches.submit(Record((source, delivery_id), events, request_digest))

    async def _run(self, items: list[Key | Record]) -> list[object]:
        keys = list(dict.fromkeys(item for item in items if not isinstance(item, Record)))
        # The first record of a delivery id wins, as against one stored earlier.
        records = list({item.key: item for item in reversed(items) if isinstance(item, Record)}.values())
        # In key order: replicas inserting the same ids in opposite orders would deadlock each
        # other, failing the lookups that share the statement.
        records.sort(key=lambda record: record.key)
        if self.held.postgres:
            rows = await self._postgres(keys, records)
        else:
            rows = await self._sqlite(keys, records)
        found: dict[Key, object] = {(row[0], row[1]): row[2] for row in rows}
        return [None if isinstance(item, Record) else found.get(item, NOT_SEEN) for item in items]

    async def _postgres(self, keys: list[Key], records: list[Record]) -> list[Any]:
        lookup = [[key[0] for key in keys], [key[1] for key in keys]]
        if not records:
            return await self.held.fetch(_PG_LOOKUP, lookup)
        columns = [
            [r.key[0] for r in records],
            [r.key[1] for r in records],
            [utc_now()] * len(records),
            [r.events for r in records],
            [r.request_digest for r in records],
        ]
        if not keys:
            return await self.held.fetch(_PG_RECORD, columns)
        return await self.held.fetch(_PG_RECORD_AND_LOOKUP, [*lookup, *columns])

    async def _sqlite(self, keys: list[Key], records: list[Record]) -> list[Any]:
        """The records, then the lookups, on the event loop's own thread.

        On aiosqlite's thread the hand-offs cost intake more CPU than the statements: that thread
        takes the GIL back from the busy event loop at each step of SQLite's work. GitHub webhooks
        at 32 in flight (the bench): 443 µs of intake's CPU per webhook that way, 360-398 µs this
        way; in-process at 6 in flight, 83 against 45 µs per delivery. The statements themselves
        take ~50 µs a batch. What may not happen on this thread, as it would stall every request:
        waiting for another connection's write lock, and a checkpoint's flush to disk (SQLite runs
        one in the commit that fills the WAL: 4-9 ms here, once every ~90 batches). The ledger's
        connection does neither (``busy_timeout=0``, ``wal_autocheckpoint=0``: services/intake/held.py).
        A batch that finds the database locked runs again on the connection's thread, waiting there
        (the insert is atomic, and a repeated one changes nothing). Every
        :data:`CHECKPOINT_AFTER_PAGES` pages written, a batch runs there too, after a checkpoint: its
        write starts the emptied WAL over, which flushes the WAL's header to disk. (A checkpoint of
        another connection that empties the WAL leaves that flush to the next write here: intake's
        pool rarely writes, but in development the router and the metrics service share the file.)
        aiosqlite has no public call for that; ``_execute`` runs a function on that thread, as its
        own methods do."""
        record = lookup = None
        if records:
            now = utc_now()
            stamp = self._bind_time(now) if self._bind_time else now
            flat = [v for r in records for v in (r.key[0], r.key[1], stamp, r.events, r.request_digest)]
            record = (sqlite_record(len(records)), flat)
        if keys:
            lookup = (sqlite_lookup(len(keys)), [part for key in keys for part in key])

        def both(connection: sqlite3.Connection) -> list[Any]:
            if record:  # in autocommit: committed before the lookup reads
                connection.execute(*record)
            return connection.execute(*lookup).fetchall() if lookup else []

        # A record of a random id dirties a page of the primary key's index; a commit, the table's
        # last page and the received_at index's.
        self._pages_since_checkpoint += (len(records) + 2) if records else 0
        checkpoint = self._pages_since_checkpoint >= CHECKPOINT_AFTER_PAGES

        async def statements(driver: Any) -> list[Any]:
            if not checkpoint:
                try:
                    return both(driver._conn)
                except sqlite3.OperationalError as exc:
                    if getattr(exc, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
            rows, checkpointed = await driver._execute(_on_own_thread, both, checkpoint, driver._conn)
            if checkpointed:
                self._pages_since_checkpoint = 0
            found: list[Any] = rows
            return found

        return await self.held.call(statements)


def _on_own_thread(
    both: Callable[[sqlite3.Connection], list[Any]], checkpoint: bool, connection: sqlite3.Connection
) -> tuple[list[Any], bool]:
    """On the connection's thread: a checkpoint if asked, then ``both``, which may wait for the
    write lock there (as long as intake waits for any statement). Returns ``both``'s rows and
    whether the checkpoint ran. A passive checkpoint copies what no reader still needs and never
    waits; one that fails (a disk error) is tried again by a later batch, and fails no request."""
    checkpointed = False
    if checkpoint:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            checkpointed = True
        except sqlite3.Error:
            log.warning("the delivery ledger's checkpoint failed; a later batch tries again", exc_info=True)
    connection.execute(f"PRAGMA busy_timeout={int(STATEMENT_TIMEOUT_S * 1000)}")
    try:
        return both(connection), checkpointed
    finally:
        connection.execute("PRAGMA busy_timeout=0")
