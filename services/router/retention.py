"""What the router keeps only for a while.

- The ids of the events it applied (its redelivery check) and the write-backs it delivered: both
  grow with every event. An event older than the ticket topic's retention cannot be delivered
  again, so its id is not needed after that; the setting's default (30 days) is above the 14 days
  deploy/README.md suggests for the topics. Failed and pending write-backs are kept (they are the
  admin's to look at or retry).
- Optionally (``ROUTER_RESOLVED_RETENTION_DAYS``), resolved tickets: their routing decisions,
  their fired SLA timers and the text of their snapshot go; a stub of the ticket stays (see
  :func:`prune_resolved_tickets`).
- Optionally (``ROUTER_FEEDBACK_RETENTION_DAYS``), the classifier's feedback examples, by the age
  of the example: they hold a ticket's text, kept apart from the ticket as training data, so the
  tickets' retention does not reach them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.escalation.models import FiredTimer
from services.router.load.store import take_write_lock
from services.router.models import PRUNABLE, ClassifierFeedback, RouterTicket, RoutingDecision
from services.router.routing.handler import CONSUMER_NAME
from services.router.writeback.models import WritebackDelivery
from shared.db.bulk import among
from shared.db.dialect import is_postgres
from shared.db.models import ProcessedEvent
from shared.db.pruning import cutoff, delete_in_chunks
from shared.events import utc_now
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)

_TICKETS = cast(Table, RouterTicket.__table__)


async def prune_router_tables(
    sessions: async_sessionmaker[AsyncSession], retention: timedelta, now: datetime | None = None
) -> dict[str, int]:
    """Delete the applied-event ids and delivered write-backs older than ``retention``; returns the
    count per table. Idempotent: replicas may run it at the same time."""
    older = cutoff(now or utc_now(), retention)
    processed = await delete_in_chunks(
        sessions,
        cast(Table, ProcessedEvent.__table__),
        (ProcessedEvent.consumer == CONSUMER_NAME) & (ProcessedEvent.processed_at < older),
    )
    # A delivered row's next_attempt_at is its last lease, taken just before the successful attempt:
    # the (status, next_attempt_at) index serves the lookup.
    delivered = await delete_in_chunks(
        sessions,
        cast(Table, WritebackDelivery.__table__),
        (WritebackDelivery.status == "delivered") & (WritebackDelivery.next_attempt_at < older),
    )
    return {"processed_events": processed, "writeback_deliveries": delivered}


# What a stub keeps of the ticket's snapshot: its identity, lifecycle and routing labels. The
# free text, the requester, links and custom fields (where personal data lives) go.
STUB_SNAPSHOT_FIELDS = (
    "external_id",
    "status",
    "priority",
    "created_at",
    "updated_at",
    "channel",
    "tags",
    "external_assignee_group",
)


# Snapshots are loaded whole to cut them down (a description may be 200 kB): small chunks.
RESOLVED_CHUNK = 200


def stub_snapshot(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {name: snapshot[name] for name in STUB_SNAPSHOT_FIELDS if name in snapshot}


async def prune_resolved_tickets(
    sessions: async_sessionmaker[AsyncSession],
    retention: timedelta,
    now: datetime | None = None,
    chunk: int = RESOLVED_CHUNK,
) -> int:
    """Cut the tickets resolved, and last stored, longer than ``retention`` ago down to stubs,
    ``chunk`` tickets per transaction; returns how many.

    Their routing decisions and fired timers are deleted and their snapshot keeps only
    :data:`STUB_SNAPSHOT_FIELDS`. The row itself stays, with its revision, status, team and SLA
    clock: consumers (the metrics service) order a ticket's states by revision and ignore an older
    one, so a ticket that came back as new (revision 1) after being deleted would stay invisible to
    them; its SLA clock would start again at its creation, weeks back; and an old event replayed
    later is still recognised as older than the state held (the handler drops such an event for a
    stub rather than fill the stub's gaps from it). A later event stores the ticket again and
    clears ``pruned_at``; the ticket is cut down again once nothing has been heard of it for the
    retention.

    On PostgreSQL the tickets are locked with SKIP LOCKED: one a routing batch holds is left for
    the next run, and a batch that waits for one gets the stub. SQLite serialises the two with the
    database write lock."""
    at = now or utc_now()
    older = cutoff(at, retention)
    total = 0
    while True:
        async with sessions() as session, session.begin():
            await take_write_lock(session)
            query = (
                select(RouterTicket.ticket_key, RouterTicket.snapshot)
                # Not heard of for as long either: history imported as resolved long ago, or a
                # comment on a long-closed ticket, is kept for the retention from then on.
                .where(text(PRUNABLE), RouterTicket.resolved_at < older, RouterTicket.updated_at < older)
                .limit(chunk)
            )
            if is_postgres(session):
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            if rows:
                keys = [key for key, _ in rows]
                await session.execute(
                    delete(RoutingDecision).where(among(RoutingDecision.ticket_key, keys, session))
                )
                await session.execute(delete(FiredTimer).where(among(FiredTimer.ticket_key, keys, session)))
                await session.execute(
                    update(_TICKETS)
                    .where(_TICKETS.c.ticket_key == bindparam("key"))
                    .values(snapshot=bindparam("stub"), pruned_at=at),
                    [{"key": key, "stub": stub_snapshot(snapshot or {})} for key, snapshot in rows],
                )
        total += len(rows)
        if len(rows) < chunk:
            return total


async def prune_feedback(
    sessions: async_sessionmaker[AsyncSession], retention: timedelta, now: datetime | None = None
) -> int:
    """Delete the classifier feedback examples recorded longer than ``retention`` ago (the
    ``created_at`` index serves the lookup); returns how many."""
    older = cutoff(now or utc_now(), retention)
    return await delete_in_chunks(
        sessions, cast(Table, ClassifierFeedback.__table__), ClassifierFeedback.created_at < older
    )


@dataclass(frozen=True)
class Retention:
    dedup: timedelta
    resolved: timedelta | None  # None: resolved tickets are kept whole
    feedback: timedelta | None = None  # None: feedback examples are kept as training data


async def prune_forever(
    sessions: async_sessionmaker[AsyncSession], retention: Retention, interval_s: float
) -> None:
    """For the life of the service: prune, then sleep ``interval_s``; a failure is retried then."""

    async def resolved(timespan: timedelta) -> dict[str, int]:
        return {"resolved_tickets": await prune_resolved_tickets(sessions, timespan)}

    async def feedback(timespan: timedelta) -> dict[str, int]:
        return {"classifier_feedback": await prune_feedback(sessions, timespan)}

    steps: list[tuple[str, Callable[[timedelta], Awaitable[dict[str, int]]], timedelta | None]] = [
        ("event ids and write-backs", functools.partial(prune_router_tables, sessions), retention.dedup),
        ("resolved tickets", resolved, retention.resolved),
        ("classifier feedback", feedback, retention.feedback),
    ]

    async def prune() -> None:
        # Each step on its own: one that keeps failing must not keep the others' data (the ticket
        # text that the resolved and feedback retentions exist to delete) from going.
        pruned: dict[str, int] = {}
        for name, step, timespan in steps:
            if timespan is None:
                continue
            try:
                pruned.update(await step(timespan))
            except Exception as exc:
                log.warning("pruning failed, will retry", extra={"step": name, "error": repr(exc)})
        if any(pruned.values()):
            log.info("pruned old router bookkeeping", extra={"pruned": pruned})

    await repeat_forever(prune, interval_s, log, "pruning router bookkeeping failed, will retry")
