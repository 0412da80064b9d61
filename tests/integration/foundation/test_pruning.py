"""Pruning the router's ever-growing bookkeeping, on both databases: applied-event ids and
delivered write-backs older than the retention go, in chunks; everything else stays, and a
redelivery of a kept event is still recognised."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.escalation.models import FiredTimer
from services.router.models import RouterTicket, RoutingDecision
from services.router.retention import prune_resolved_tickets, prune_router_tables
from services.router.routing.handler import CONSUMER_NAME, RoutingHandler
from services.router.writeback.models import WritebackDelivery
from shared.db.dialect import is_postgres
from shared.db.models import ProcessedEvent
from shared.db.processed import claim_events
from shared.db.pruning import delete_in_chunks
from shared.events import EventEnvelope, EventType, TicketSnapshot, TicketStatus, ticket_event, utc_now
from shared.kafka.consumer import ConsumedEvent
from shared.kafka.embedded import EmbeddedBroker
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import CommonSettings
from tests.conftest import unique_topics
from tests.integration.foundation.test_router_handler import route
from tests.integration.router_api.helpers import running_router
from tests.waiting import wait_until

RETENTION = timedelta(days=30)
PROCESSED = cast(Table, ProcessedEvent.__table__)


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


async def _claim(
    sessions: async_sessionmaker[AsyncSession], consumer: str, ids: list[str], age: timedelta
) -> None:
    async with sessions() as session, session.begin():
        assert await claim_events(session, consumer, ids, utc_now() - age) == set(ids)


async def _kept(sessions: async_sessionmaker[AsyncSession], ids: list[str]) -> set[str]:
    async with sessions() as session:
        return set(
            await session.scalars(select(ProcessedEvent.event_id).where(ProcessedEvent.event_id.in_(ids)))
        )


async def test_chunks_delete_every_matching_row_and_no_other(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    doomed, spared = _ids(5), _ids(2)
    await _claim(sessions, "chunk-test", doomed + spared, timedelta(0))

    deleted = await delete_in_chunks(sessions, PROCESSED, ProcessedEvent.event_id.in_(doomed), chunk=2)

    assert deleted == 5  # three transactions: 2, 2, then a short 1
    assert await _kept(sessions, doomed + spared) == set(spared)
    assert await delete_in_chunks(sessions, PROCESSED, ProcessedEvent.event_id.in_(doomed), chunk=2) == 0


async def test_old_event_ids_go_and_recent_ones_still_catch_redeliveries(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old, recent, other_consumer = _ids(3), _ids(2), _ids(1)
    await _claim(sessions, CONSUMER_NAME, old, RETENTION + timedelta(days=1))
    await _claim(sessions, CONSUMER_NAME, recent, RETENTION - timedelta(days=1))
    await _claim(sessions, "someone-else", other_consumer, RETENTION + timedelta(days=1))

    pruned = await prune_router_tables(sessions, RETENTION)

    assert pruned["processed_events"] >= len(old)  # earlier tests' old rows may go too
    assert await _kept(sessions, old + recent + other_consumer) == set(recent + other_consumer)
    async with sessions() as session, session.begin():
        # The redelivery check still holds for what was kept.
        assert await claim_events(session, CONSUMER_NAME, recent, utc_now()) == set()


async def test_only_delivered_write_backs_past_the_retention_go(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    target = uuid.uuid4().int % 1_000_000_000
    long_ago, lately = utc_now() - RETENTION - timedelta(days=1), utc_now() - timedelta(hours=1)
    rows = {
        "delivered long ago": ("delivered", long_ago),
        "delivered lately": ("delivered", lately),
        "failed long ago": ("failed", long_ago),
        "pending long ago": ("pending", long_ago),
    }
    async with sessions() as session, session.begin():
        for name, (status, at) in rows.items():
            session.add(
                WritebackDelivery(
                    target_id=target,
                    event_id=name,
                    kind="ticket.routed",
                    ticket_key="t:1",
                    body="{}",
                    status=status,
                    next_attempt_at=at,
                )
            )

    await prune_router_tables(sessions, RETENTION)

    async with sessions() as session:
        left = set(
            await session.scalars(
                select(WritebackDelivery.event_id).where(WritebackDelivery.target_id == target)
            )
        )
    assert left == {"delivered lately", "failed long ago", "pending long ago"}


async def test_a_running_router_prunes_at_start_and_on_its_interval(
    broker: EmbeddedBroker, database_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    old = _ids(2)
    await _claim(sessions, CONSUMER_NAME, old, timedelta(days=2))

    async with running_router(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        topic_partitions=1,
        router_dedup_retention_days=1,
        router_prune_interval_s=0.2,
        **unique_topics(),
    ):

        async def all_gone(ids: list[str]) -> bool:
            return not await _kept(sessions, ids)

        await wait_until(lambda: all_gone(old), timeout_s=10)
        # And again on its interval: ids that age past the retention while it runs go too.
        later = _ids(1)
        await _claim(sessions, CONSUMER_NAME, later, timedelta(days=2))
        await wait_until(lambda: all_gone(later), timeout_s=10)


LOAD_COUNTED = frozenset({TicketStatus.NEW, TicketStatus.OPEN})
LONG_AGO = utc_now() - timedelta(days=40)


def _ticket(key: str, status: TicketStatus, resolved_at: datetime | None) -> RouterTicket:
    return RouterTicket(
        ticket_key=key,
        source="api",
        external_id=key,
        status=status.value,
        priority="P3",
        created_at=LONG_AGO - timedelta(days=1),
        resolved_at=resolved_at,
    )


async def _seed_tickets(sessions: async_sessionmaker[AsyncSession], tickets: dict[str, RouterTicket]) -> None:
    async with sessions() as session, session.begin():
        for key, ticket in tickets.items():
            session.add(ticket)
            session.add(
                RoutingDecision(
                    event_id=str(uuid.uuid4()),
                    caused_by=str(uuid.uuid4()),
                    ticket_key=key,
                    kind="ticket.routed",
                    status=ticket.status,
                    priority="P3",
                )
            )
            session.add(FiredTimer(timer_id=f"{key}:resolution:breach:0", ticket_key=key, kind="breach"))


async def _left(sessions: async_sessionmaker[AsyncSession], keys: list[str]) -> dict[str, set[str]]:
    async with sessions() as session:
        return {
            "tickets": set(
                await session.scalars(
                    select(RouterTicket.ticket_key).where(RouterTicket.ticket_key.in_(keys))
                )
            ),
            "decisions": set(
                await session.scalars(
                    select(RoutingDecision.ticket_key).where(RoutingDecision.ticket_key.in_(keys))
                )
            ),
            "timers": set(
                await session.scalars(select(FiredTimer.ticket_key).where(FiredTimer.ticket_key.in_(keys)))
            ),
        }


async def test_resolved_tickets_past_the_retention_go_with_their_decisions_and_timers(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    prefix = f"prune-{uuid.uuid4().hex[:8]}"
    tickets = {
        f"{prefix}:solved-long-ago": _ticket(f"{prefix}:solved-long-ago", TicketStatus.SOLVED, LONG_AGO),
        f"{prefix}:closed-long-ago": _ticket(f"{prefix}:closed-long-ago", TicketStatus.CLOSED, LONG_AGO),
        f"{prefix}:solved-lately": _ticket(f"{prefix}:solved-lately", TicketStatus.SOLVED, utc_now()),
        f"{prefix}:open-for-long": _ticket(f"{prefix}:open-for-long", TicketStatus.OPEN, None),
        # Resolved long ago but counted towards load (an admin's choice): the counter needs it.
        f"{prefix}:counted": _ticket(f"{prefix}:counted", TicketStatus.ON_HOLD, LONG_AGO),
    }
    await _seed_tickets(sessions, tickets)

    pruned = await prune_resolved_tickets(sessions, RETENTION, LOAD_COUNTED | {TicketStatus.ON_HOLD}, chunk=1)

    assert pruned >= 2  # one ticket per transaction; earlier tests' old tickets may go too
    kept = {f"{prefix}:solved-lately", f"{prefix}:open-for-long", f"{prefix}:counted"}
    assert await _left(sessions, list(tickets)) == {"tickets": kept, "decisions": kept, "timers": kept}


async def test_a_ticket_a_routing_batch_holds_is_left_for_the_next_run(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    key = f"prune-{uuid.uuid4().hex[:8]}:held"
    await _seed_tickets(sessions, {key: _ticket(key, TicketStatus.SOLVED, LONG_AGO)})
    async with sessions() as holder, holder.begin():
        if not is_postgres(holder):
            pytest.skip("PostgreSQL row locks; SQLite serialises writers")
        await holder.execute(select(RouterTicket).where(RouterTicket.ticket_key == key).with_for_update())

        await asyncio.wait_for(prune_resolved_tickets(sessions, RETENTION, LOAD_COUNTED), timeout=10)

        assert (await _left(sessions, [key]))["tickets"] == {key}
    await prune_resolved_tickets(sessions, RETENTION, LOAD_COUNTED)
    assert (await _left(sessions, [key]))["tickets"] == set()


async def test_an_event_for_a_pruned_ticket_routes_it_as_new(
    sessions: async_sessionmaker[AsyncSession], settings_kwargs: dict[str, Any]
) -> None:
    settings = CommonSettings(**settings_kwargs)
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        handler = RoutingHandler(
            sessions, producer, settings.topic_routing_events, lambda: route, lambda: LONG_AGO
        )
        external_id = uuid.uuid4().hex

        def event(kind: EventType, **fields: Any) -> EventEnvelope:
            return ticket_event(kind, "api", TicketSnapshot(external_id=external_id, **fields), LONG_AGO)

        created = event(EventType.TICKET_CREATED, subject="vpn")
        await handler([ConsumedEvent(created, "tickets", 0, 0)])
        await handler(
            [
                ConsumedEvent(
                    event(EventType.TICKET_STATUS_CHANGED, status=TicketStatus.SOLVED), "tickets", 0, 1
                )
            ]
        )
        assert await prune_resolved_tickets(sessions, RETENTION, LOAD_COUNTED) >= 1
        assert (await _left(sessions, [created.ticket_key]))["tickets"] == set()

        reopened = event(EventType.TICKET_STATUS_CHANGED, status=TicketStatus.OPEN)
        await handler([ConsumedEvent(reopened, "tickets", 0, 2)])

        async with sessions() as session:
            row = await session.get(RouterTicket, created.ticket_key)
        assert row is not None and row.revision == 1 and row.status == TicketStatus.OPEN.value
        assert row.resolved_at is None
    finally:
        await producer.stop()
