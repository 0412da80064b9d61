"""A shard restore racing the fetcher: records read from the committed offsets while checkpoints
load must not reach a restored shard, or the events between checkpoint and commit are skipped."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.metrics.ingest.consumer import BacklogIngest, Shard
from shared.events import EventType, TicketSnapshot, ticket_event
from shared.kafka.consumer import ConsumedEvent

TOPIC = "tickets"


def created(partition: int, offset: int) -> ConsumedEvent:
    snapshot = TicketSnapshot(external_id=f"{partition}-{offset}", subject="printer on fire")
    return ConsumedEvent(ticket_event(EventType.TICKET_CREATED, "api", snapshot), TOPIC, partition, offset)


def received(ingest: BacklogIngest, partition: int) -> int:
    return sum(ingest.shards[partition].state.c_received)


async def test_records_fetched_while_shards_load_do_not_skip_the_replay(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    tps = {TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)}
    first = BacklogIngest(sessions, name=name)
    await first.on_assign(tps)
    await first([created(p, o) for p in (0, 1) for o in range(5)])
    await first.checkpoint()  # covers offsets 0-4 of both partitions
    await first([created(p, o) for p in (0, 1) for o in range(5, 10)])  # committed, never checkpointed
    # ... the instance dies here; its successor restores partition 1 slowly.

    second = BacklogIngest(sessions, name=name)
    release = asyncio.Event()
    load_shard = second._load_shard

    async def slow_load(p: int) -> Shard:
        shard = await load_shard(p)
        if p == 1:
            await release.wait()
        return shard

    second._load_shard = slow_load  # type: ignore[method-assign]
    assigning = asyncio.create_task(second.on_assign(tps))
    await asyncio.sleep(0.05)
    # The fetcher started from the committed offset 10 before the seek: a batch arrives meanwhile.
    await second([created(p, o) for p in (0, 1) for o in range(10, 12)])
    release.set()
    seeks = await assigning

    assert seeks == {tp: 5 for tp in tps}  # replay from what the checkpoint covers
    await second([created(p, o) for p in (0, 1) for o in range(5, 12)])  # the replay after the seek
    await second([created(p, o) for p in (0, 1) for o in range(8, 12)])  # a redelivery on top
    assert (received(second, 0), received(second, 1)) == (12, 12)
