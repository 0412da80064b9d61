"""What the router keeps only for a while.

- The ids of the events it applied (its redelivery check) and the write-backs it delivered: both
  grow with every event. An event older than the ticket topic's retention cannot be delivered
  again, so its id is not needed after that; the setting's default (30 days) is above the 14 days
  deploy/README.md suggests for the topics. Failed and pending write-backs are kept (they are the
  admin's to look at or retry).
- Optionally (``ROUTER_RESOLVED_RETENTION_DAYS``), resolved tickets: their state, with the ticket
  snapshot it holds, their routing decisions and their fired SLA timers. A later event for such a
  ticket finds nothing and routes it as a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.escalation.models import FiredTimer
from services.router.load.store import take_write_lock
from services.router.models import RouterTicket, RoutingDecision
from services.router.routing.handler import CONSUMER_NAME
from services.router.writeback.models import WritebackDelivery
from shared.db.bulk import among
from shared.db.dialect import is_postgres
from shared.db.models import ProcessedEvent
from shared.db.pruning import PRUNE_CHUNK, delete_in_chunks
from shared.events import TicketStatus, utc_now
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)


async def prune_router_tables(
    sessions: async_sessionmaker[AsyncSession], retention: timedelta, now: datetime | None = None
) -> dict[str, int]:
    """Delete the applied-event ids and delivered write-backs older than ``retention``; returns the
    count per table. Idempotent: replicas may run it at the same time."""
    cutoff = (now or utc_now()) - retention
    processed = await delete_in_chunks(
        sessions,
        cast(Table, ProcessedEvent.__table__),
        (ProcessedEvent.consumer == CONSUMER_NAME) & (ProcessedEvent.processed_at < cutoff),
    )
    # A delivered row's next_attempt_at is its last lease, taken just before the successful attempt:
    # the (status, next_attempt_at) index serves the lookup.
    delivered = await delete_in_chunks(
        sessions,
        cast(Table, WritebackDelivery.__table__),
        (WritebackDelivery.status == "delivered") & (WritebackDelivery.next_attempt_at < cutoff),
    )
    return {"processed_events": processed, "writeback_deliveries": delivered}


async def prune_resolved_tickets(
    sessions: async_sessionmaker[AsyncSession],
    retention: timedelta,
    load_counted: Collection[TicketStatus],
    now: datetime | None = None,
    chunk: int = PRUNE_CHUNK // 5,
) -> int:
    """Delete the tickets resolved longer than ``retention`` ago, with their decisions and fired
    timers, ``chunk`` tickets per transaction; returns how many tickets went.

    A ticket in a status that counts towards team load is kept whatever its age (only if an admin
    made a resolved status count): the load counter would go on counting it. On PostgreSQL the
    tickets are locked with SKIP LOCKED: one a routing batch holds is left for the next run, and a
    batch that waits for one this run deletes finds it gone and routes the event as a first
    sight. SQLite serialises the two with the database write lock."""
    cutoff = (now or utc_now()) - retention
    total = 0
    while True:
        async with sessions() as session, session.begin():
            await take_write_lock(session)
            query = (
                select(RouterTicket.ticket_key)
                .where(RouterTicket.resolved_at < cutoff, RouterTicket.status.not_in(list(load_counted)))
                .limit(chunk)
            )
            if is_postgres(session):
                query = query.with_for_update(skip_locked=True)
            keys = list(await session.scalars(query))
            if keys:
                await session.execute(
                    delete(RoutingDecision).where(among(RoutingDecision.ticket_key, keys, session))
                )
                await session.execute(delete(FiredTimer).where(among(FiredTimer.ticket_key, keys, session)))
                await session.execute(
                    delete(RouterTicket).where(among(RouterTicket.ticket_key, keys, session))
                )
        total += len(keys)
        if len(keys) < chunk:
            return total


@dataclass(frozen=True)
class Retention:
    dedup: timedelta
    resolved: timedelta | None  # None: resolved tickets are kept
    load_counted: frozenset[TicketStatus]


async def prune_forever(
    sessions: async_sessionmaker[AsyncSession], retention: Retention, interval_s: float
) -> None:
    """For the life of the service: prune, then sleep ``interval_s``; a failure is retried then."""

    async def prune() -> None:
        pruned = await prune_router_tables(sessions, retention.dedup)
        if retention.resolved is not None:
            pruned["resolved_tickets"] = await prune_resolved_tickets(
                sessions, retention.resolved, retention.load_counted
            )
        if any(pruned.values()):
            log.info("pruned old router bookkeeping", extra={"pruned": pruned})

    await repeat_forever(prune, interval_s, log, "pruning router bookkeeping failed, will retry")
