"""Webhook delivery ids: claimed once per (source, delivery id) by any replica, pruned after a while."""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import Enum
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import WebhookDelivery
from shared.db.dialect import conflict_insert
from shared.db.pruning import cutoff, delete_in_chunks
from shared.events import utc_now
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)

MAX_DELIVERY_ID = 200  # the column's length


def key_reused(stored: str | None, given: str | None) -> bool:
    """Whether a delivery id stored with digest ``stored`` is reused by a request of digest
    ``given``. Webhooks give none, and a row from before digests were kept has none: a duplicate."""
    return given is not None and stored is not None and stored != given


class Claim(Enum):
    CLAIMED = "claimed"  # first time: go on
    DUPLICATE = "duplicate"  # accepted before: acknowledge without publishing
    KEY_REUSED = "key_reused"  # accepted before with a different request: refuse


async def claim_delivery(
    session: AsyncSession, source: str, delivery_id: str, events: int, request_digest: str | None = None
) -> Claim:
    """Insert the dedupe row inside the caller's transaction, or say why it already exists.

    ON CONFLICT DO NOTHING is race-free: on PostgreSQL a concurrent claim of the same key waits for
    the first transaction and then sees its row (or inserts, if the first rolled back); SQLite
    serialises writers altogether. With ``request_digest``, a row claimed with another digest is
    :attr:`Claim.KEY_REUSED` (a row without one, from before digests were kept, is a duplicate).
    """
    values = {
        "source": source,
        "delivery_id": delivery_id,
        "received_at": utc_now(),
        "events": events,
        "request_digest": request_digest,
    }
    result = await session.execute(
        conflict_insert(session, WebhookDelivery).values(values).on_conflict_do_nothing()
    )
    if result.rowcount:  # type: ignore[attr-defined]
        return Claim.CLAIMED
    if request_digest is None:
        return Claim.DUPLICATE
    stored = await session.scalar(
        select(WebhookDelivery.request_digest).where(
            WebhookDelivery.source == source, WebhookDelivery.delivery_id == delivery_id
        )
    )
    return Claim.KEY_REUSED if key_reused(stored, request_digest) else Claim.DUPLICATE


async def prune_deliveries(sessions: async_sessionmaker[AsyncSession], retention: timedelta) -> int:
    table = cast(Table, WebhookDelivery.__table__)
    return await delete_in_chunks(sessions, table, WebhookDelivery.received_at < cutoff(utc_now(), retention))


async def prune_forever(
    sessions: async_sessionmaker[AsyncSession], retention: timedelta, interval_s: float
) -> None:
    """Runs for the life of the service; every replica may prune, the deletes are idempotent."""

    async def prune() -> None:
        pruned = await prune_deliveries(sessions, retention)
        if pruned:
            log.info("pruned old webhook deliveries", extra={"pruned": pruned})

    await repeat_forever(prune, interval_s, log, "pruning webhook deliveries failed, will retry")
