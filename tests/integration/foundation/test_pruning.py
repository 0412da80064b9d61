"""Pruning the router's ever-growing bookkeeping, on both databases: applied-event ids and
delivered write-backs older than the retention go, in chunks; everything else stays, and a
redelivery of a kept event is still recognised."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.retention import prune_router_tables
from services.router.routing.handler import CONSUMER_NAME
from services.router.writeback.models import WritebackDelivery
from shared.db.models import ProcessedEvent
from shared.db.processed import claim_events
from shared.db.pruning import delete_in_chunks
from shared.events import utc_now
from shared.kafka.embedded import EmbeddedBroker
from tests.conftest import unique_topics
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
