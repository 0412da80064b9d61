"""The ``processed_events`` ledger: which event ids a consumer has already applied."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.bulk import insert_rows
from shared.db.models import ProcessedEvent

_TABLE = cast(Table, ProcessedEvent.__table__)


async def claim_events(
    session: AsyncSession, consumer: str, event_ids: Iterable[str], at: datetime
) -> set[str]:
    """Record ``event_ids`` as processed by ``consumer`` in the session's transaction and return
    the ones not recorded before: the events to apply now.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` instead of a lookup and a later insert:
    one round trip less, and the conflict check walks the primary key whatever the planner thinks
    of the table's size (a lookup planned while the table was young scanned all of it). Ids are
    inserted in sorted order, so two consumers claiming overlapping batches wait on each other
    instead of deadlocking; the second one sees the ids as taken once the first commits.

    The rows go through :func:`insert_rows` (one ``unnest`` statement on PostgreSQL), not as
    ``.values([...])``: a 500-row ``.values()`` statement had no cache key and was compiled anew
    for every batch.
    """
    ids = sorted(set(event_ids))
    if not ids:
        return set()
    rows = [{"consumer": consumer, "event_id": event_id, "processed_at": at} for event_id in ids]
    return set(await insert_rows(session, _TABLE, rows, skip_conflicts=True, returning=_TABLE.c.event_id))
