"""What the router keeps only for a while: the ids of the events it applied (its redelivery check)
and the write-backs it delivered. Both grow with every event; nothing else removes them.

An event older than the ticket topic's retention cannot be delivered again, so its id is not needed
after that; the setting's default (30 days) is above the 14 days deploy/README.md suggests for the
topics. Failed and pending write-backs are kept (they are the admin's to look at or retry).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.routing.handler import CONSUMER_NAME
from services.router.writeback.models import WritebackDelivery
from shared.db.models import ProcessedEvent
from shared.db.pruning import delete_in_chunks
from shared.events import utc_now
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


async def prune_forever(
    sessions: async_sessionmaker[AsyncSession], retention: timedelta, interval_s: float
) -> None:
    """For the life of the service: prune, then sleep ``interval_s``; a failure is retried then."""

    async def prune() -> None:
        pruned = await prune_router_tables(sessions, retention)
        if any(pruned.values()):
            log.info("pruned old router bookkeeping", extra={"pruned": pruned})

    await repeat_forever(prune, interval_s, log, "pruning router bookkeeping failed, will retry")
