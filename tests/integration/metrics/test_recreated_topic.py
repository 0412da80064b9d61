"""A checkpoint from another incarnation of the topics (the in-memory dev broker restarted while
the database kept the checkpoints): its offsets lie past the new partitions' ends, and the new
events must be counted, not skipped as if applied already."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.metrics.ingest.consumer import BacklogIngest
from services.metrics.ingest.runner import ingest_runner
from shared.events import EventType, TicketSnapshot, ticket_event
from shared.kafka.consumer import ConsumedEvent
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import MetricsSettings


def received(ingest: BacklogIngest) -> int:
    return sum(sum(state.c_received) for state in ingest.states())


async def test_a_checkpoint_past_the_partitions_end_is_read_from_the_start(
    settings_kwargs: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = MetricsSettings(
        **{**settings_kwargs, "topic_partitions": 1}, metrics_group_id=f"recreated-{uuid.uuid4().hex[:8]}"
    )
    await ensure_topics(settings)
    tickets = TopicPartition(settings.topic_ticket_events, 0)
    routing = TopicPartition(settings.topic_routing_events, 0)

    # The previous incarnation of the topics: five tickets at offsets 100-104, checkpointed.
    before = BacklogIngest(sessions, name=settings.metrics_group_id)
    await before.on_assign({tickets, routing})
    old = [
        ticket_event(EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=f"old-{i}"))
        for i in range(5)
    ]
    await before([ConsumedEvent(e, tickets.topic, 0, 100 + i) for i, e in enumerate(old)])
    await before.checkpoint()

    # The topics as they are now: three new tickets at offsets 0-2.
    producer = make_producer(settings)
    await producer.start()
    for i in range(3):
        event = ticket_event(EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=f"new-{i}"))
        await producer.send_and_wait(tickets.topic, event.to_bytes(), key=event.ticket_key.encode())

    ingest = BacklogIngest(sessions, name=settings.metrics_group_id)
    runner = ingest_runner(settings, producer, ingest)  # as the metrics app runs it
    await runner.start()
    try:
        deadline = time.monotonic() + 30
        while received(ingest) < 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        # The old tickets are kept (restored from the checkpoint) and the new ones counted.
        assert received(ingest) == 8
        assert ingest.shards[0].next_offsets[f"{tickets.topic}:0"] == 3
    finally:
        runner.loop.stop()
        await runner.stop()
        await producer.stop()
