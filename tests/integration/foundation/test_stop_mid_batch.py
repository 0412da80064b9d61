"""A service stopped part way through a batch, on the embedded broker: what went through of the
batch before the stop (a dead letter among it) is committed, so the restarted service neither
handles it again nor sends the dead letter a second time."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.exc import OperationalError

from shared.events import EventType, TicketSnapshot, ticket_event
from shared.kafka.consumer import ConsumedEvent
from shared.kafka.producer import make_producer
from shared.kafka.runner import ConsumerRunner
from shared.kafka.topics import ensure_topics
from shared.settings import ConsumerSettings
from tests.kafka_reading import read_records


async def test_a_stop_during_an_outage_commits_past_the_dead_letter_sent_before_it(
    settings_kwargs: dict[str, object],
):
    settings = ConsumerSettings.model_validate(
        {
            **settings_kwargs,
            "topic_partitions": 1,
            "consumer_max_attempts": 2,
            "consumer_retry_backoff_max_s": 0.05,
        }
    )
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    group = f"stop-mid-batch-{uuid.uuid4().hex[:8]}"
    handled: list[str] = []
    database_down = asyncio.Event()  # from ticket 2 on, until the restart

    async def handler(events: list[ConsumedEvent]) -> None:
        ids = [e.envelope.ticket().external_id for e in events]
        if "1" in ids:
            raise RuntimeError("bug triggered by ticket 1")  # dead-lettered once isolated
        if "2" in ids and first.alive:
            database_down.set()
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database down"))
        handled.extend(ids)

    def runner() -> ConsumerRunner:
        return ConsumerRunner(
            settings, producer, group_id=group, topics=[settings.topic_ticket_events], handler=handler
        )

    first = runner()
    try:
        for n in range(5):
            event = ticket_event(
                EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=str(n), subject="s")
            )
            await producer.send_and_wait(settings.topic_ticket_events, event.to_bytes(), partition=0)
        await first.start()
        try:
            async with asyncio.timeout(60):
                await database_down.wait()  # 0 handled, 1 dead-lettered, 2-4 retried
        finally:
            await first.stop()  # SIGTERM
        assert handled == ["0"]
        second = runner()  # the restart
        await second.start()
        try:
            async with asyncio.timeout(60):
                while "4" not in handled:
                    await asyncio.sleep(0.05)
        finally:
            await second.stop()
    finally:
        await producer.stop()
    assert handled == ["0", "2", "3", "4"]  # resumed at ticket 2: nothing handled twice
    dead = await read_records(settings.kafka_bootstrap_servers, settings.topic_dead_letter, expected=1)
    assert [dict(r.headers)["dlq.offset"] for r in dead] == [b"1"]  # once
