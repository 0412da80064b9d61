"""A throttled topic on the embedded broker: while both topics are written steadily, the loop
reads the throttled one in a few full fetches and the other at full speed, and hands on every
offset of both once, in order (aiokafka drops a paused partition's buffered fetch; the position
stays, so nothing is skipped)."""

from __future__ import annotations

import asyncio
import uuid

from shared.events import EventType, TicketSnapshot, ticket_event
from shared.kafka.consumer import ConsumedEvent
from shared.kafka.producer import make_producer
from shared.kafka.runner import ConsumerRunner
from shared.kafka.throttle import FetchThrottle
from shared.kafka.topics import ensure_topics
from shared.settings import ConsumerSettings

SECONDS = 3.0
INTERVAL_S = 0.25


async def test_a_throttled_topic_is_read_in_few_fetches_and_nothing_is_skipped(
    settings_kwargs: dict[str, object],
):
    settings = ConsumerSettings.model_validate(
        {**settings_kwargs, "topic_partitions": 1, "consumer_fetch_max_wait_ms": 5}
    )
    await ensure_topics(settings)
    tickets, routing = settings.topic_ticket_events, settings.topic_routing_events
    handled: dict[str, list[int]] = {tickets: [], routing: []}
    batches_with: dict[str, int] = {tickets: 0, routing: 0}

    async def handler(events: list[ConsumedEvent]) -> None:
        for topic in {event.topic for event in events}:
            batches_with[topic] += 1
        for event in events:
            handled[event.topic].append(event.offset)

    producer = make_producer(settings)
    await producer.start()
    runner = ConsumerRunner(
        settings,
        producer,
        group_id=f"throttle-{uuid.uuid4().hex[:8]}",
        topics=[tickets, routing],
        handler=handler,
        throttle=FetchThrottle([tickets], INTERVAL_S),
    )
    await runner.start()
    written = 0
    try:
        async with asyncio.timeout(60):
            while not runner.loop.assigned_once:
                await asyncio.sleep(0.05)
            end = asyncio.get_running_loop().time() + SECONDS
            while asyncio.get_running_loop().time() < end:
                value = ticket_event(
                    EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=str(written), subject="t")
                ).to_bytes()
                await asyncio.gather(
                    producer.send_and_wait(tickets, value, partition=0),
                    producer.send_and_wait(routing, value, partition=0),
                )
                written += 1
                await asyncio.sleep(0.005)
            while len(handled[tickets]) < written or len(handled[routing]) < written:
                await asyncio.sleep(0.05)
            await asyncio.sleep(INTERVAL_S * 2)  # anything handed twice would come by now
    finally:
        await runner.stop()
        await producer.stop()
    assert handled[tickets] == list(range(written))
    assert handled[routing] == list(range(written))
    # One fetch per interval once caught up; more while behind (a loaded machine).
    assert batches_with[tickets] <= 2 * SECONDS / INTERVAL_S, batches_with  # 463 without (3 s here)
    assert batches_with[routing] >= 3 * batches_with[tickets], batches_with
