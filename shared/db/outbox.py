"""Transactional outbox: messages stored with the state that produced them, published later.

The router writes its output events here in the same transaction as its decisions, then
publishes them once that transaction committed; intake parks events here when the broker is
down. A relay publishes what is left (after a crash, or once the broker is back) in id order,
which is insertion order, so the events of one ticket keep their order.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import cast

from aiokafka import AIOKafkaProducer
from sqlalchemy import Delete, Select, Table, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db.bulk import among_parameter, insert_rows
from shared.db.dialect import is_postgres
from shared.db.models import OutboxMessage
from shared.events import EventEnvelope
from shared.kafka.producer import send_keyed
from shared.overlap import IdleWork, during

log = logging.getLogger(__name__)


def outbox_row(owner: str, topic: str, envelope: EventEnvelope, value: bytes | None = None) -> OutboxMessage:
    """``value``: the envelope's bytes, when the caller has them."""
    value = envelope.to_bytes() if value is None else value
    return OutboxMessage(owner=owner, topic=topic, key=envelope.ticket_key, value=value)


@dataclass(slots=True)
class PendingMessage:
    """An outbox row for a Core insert: what an ``OutboxMessage`` carries, without the ORM's
    per-instance bookkeeping (the router writes one per routing event). ``id`` once inserted."""

    owner: str
    topic: str
    key: str
    value: bytes
    id: int = 0


def pending_message(owner: str, topic: str, envelope: EventEnvelope) -> PendingMessage:
    return PendingMessage(owner, topic, envelope.ticket_key, envelope.to_bytes())


async def insert_outbox(session: AsyncSession, rows: Sequence[PendingMessage]) -> None:
    """Insert pending messages in one Core statement, in order, and give each its id."""
    if not rows:
        return
    values = [{"owner": r.owner, "topic": r.topic, "key": r.key, "value": r.value} for r in rows]
    table = cast(Table, OutboxMessage.__table__)
    # Ids are drawn in row order, so the sorted ids are the rows' ids in order.
    ids = sorted(await insert_rows(session, table, values, returning=table.c.id))
    for row, row_id in zip(rows, ids, strict=True):
        row.id = row_id


Stored = OutboxMessage | PendingMessage


async def publish_rows(producer: AIOKafkaProducer, rows: Sequence[Stored]) -> None:
    """Send all rows, then wait for every acknowledgement (batched, order kept per partition)."""
    futures = await send_keyed(producer, ((row.topic, row.key.encode(), row.value) for row in rows))
    if futures:
        await asyncio.gather(*futures)


@functools.cache
def _delete_by_ids(postgres: bool) -> Delete:
    # A Core statement built once: the ORM's bulk delete (its session synchronisation, RETURNING
    # the ids, a statement and cache key built anew) cost ~3x the Core one, every router batch.
    table = cast(Table, OutboxMessage.__table__)
    return delete(table).where(among_parameter(table.c.id, "ids", postgres))


async def delete_rows(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(_delete_by_ids(is_postgres(session)), {"ids": list(ids)})


async def unpublished_of(session: AsyncSession, owner: str, keys: Collection[str]) -> list[PendingMessage]:
    """``owner``'s rows still in the outbox for these message keys, in id order (their order)."""
    if not keys:
        return []
    found = await session.execute(_unpublished_of(is_postgres(session)), {"owner": owner, "keys": list(keys)})
    return [PendingMessage(owner, topic, key, value, row_id) for row_id, topic, key, value in found.all()]


@functools.cache
def _unpublished_of(postgres: bool) -> Select[int, str, str, bytes]:
    # Built once: a router batch with SLA clocks runs it (see _delete_by_ids).
    table = cast(Table, OutboxMessage.__table__)
    return (
        select(table.c.id, table.c.topic, table.c.key, table.c.value)
        .where(table.c.owner == bindparam("owner"), among_parameter(table.c.key, "keys", postgres))
        .order_by(table.c.id)
    )


async def outbox_depth(sessions: async_sessionmaker[AsyncSession], owner: str) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).where(OutboxMessage.owner == owner)) or 0)


async def relay_once(
    sessions: async_sessionmaker[AsyncSession], producer: AIOKafkaProducer, owner: str, limit: int = 1000
) -> int:
    """Publish up to ``limit`` pending rows of ``owner`` in order; returns how many were sent."""
    async with sessions() as session:
        rows = (
            await session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.owner == owner)
                .order_by(OutboxMessage.id)
                .limit(limit)
            )
        ).all()
        if not rows:
            return 0
        await publish_rows(producer, rows)
        await delete_rows(session, [row.id for row in rows])
        await session.commit()
        return len(rows)


class OutboxWriter:
    """One writer's side of the outbox (the router's handler, its escalation scanner): effects
    and their messages committed together, then published and deleted; and what a failed publish
    (or a previous process) left behind relayed, in order, before anything new goes out."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        owner: str,
        *,
        dirty: bool,
    ) -> None:
        self.sessions = sessions
        self._engine: AsyncEngine = sessions.kw["bind"]
        self.producer = producer
        self.owner = owner
        # Shared by tasks (the router's batch handler and its escalation scanner): one relays at a
        # time, and a mark made while it relays is not lost when it finishes (see ``dirty``).
        self._dirty = dirty
        self._marks = 0
        self._relaying = asyncio.Lock()

    @property
    def dirty(self) -> bool:
        """Rows of ``owner`` may be waiting in the outbox, unpublished."""
        return self._dirty

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self._dirty = value
        self._marks += value

    async def relay_leftovers(self) -> None:
        """Publish what waits in the outbox, when something may (see ``dirty``)."""
        if not self._dirty:
            return
        async with self._relaying:
            marks = self._marks
            if not self._dirty:  # relayed by another task meanwhile
                return
            while await relay_once(self.sessions, self.producer, self.owner):
                pass
            if self._marks == marks:  # else marked again meanwhile: rows may have come since
                self._dirty = False

    async def commit_then_publish(
        self, store: Callable[[AsyncSession], Awaitable[Sequence[Stored]]], idle: IdleWork | None = None
    ) -> None:
        """Run ``store`` in a transaction (it writes the effects and their outbox rows and returns
        the rows); once committed, publish the rows and delete them. ``idle`` work fills the
        waits for the commit, the acknowledgements and the delete.

        Both transactions use one pooled connection: a second checkout would cost ~0.25 ms of CPU
        (and a liveness ping if it sat idle, see shared/db/liveness.py), which a batch of a few
        tickets feels. If anything fails, ``dirty``
        is set and the next call relays what waits first: a failed publish leaves the rows, and so
        may a failed commit (its answer lost after the server committed: a retry of the batch then
        finds its events done and writes nothing) or a failed delete.
        """
        try:
            async with self._engine.connect() as connection:
                async with self.sessions(bind=connection) as session, session.begin():
                    rows = await store(session)
                    await during(idle, session.commit())
                # Committed: no row is locked any more, a later reply delays only this batch.
                await during(idle, publish_rows(self.producer, rows), wide=True)
                if not rows:
                    return
                postgres = connection.dialect.name == "postgresql"
                if postgres:
                    # One round trip: the delete commits itself, with no BEGIN and COMMIT around
                    # it (the pool restores the isolation level when the connection goes back).
                    connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
                # On the connection: a session of its own for one Core statement cost ~0.2 ms.
                delete_published = _delete_by_ids(postgres)
                await during(
                    idle, connection.execute(delete_published, {"ids": [row.id for row in rows]}), wide=True
                )
                await during(idle, connection.commit(), wide=True)
        except BaseException:
            self.dirty = True
            raise
