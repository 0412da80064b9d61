"""Batched publishing (``send_keyed``) on the real broker: the partitions ``send`` would choose,
each partition's messages in order, and nothing lost when a batch fills up."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaProducer

from shared.kafka.producer import send_keyed
from shared.kafka.topics import ensure_topics
from shared.settings import CommonSettings
from tests.kafka_reading import read_records


async def read_all(bootstrap: str, topic: str, expect: int) -> dict[bytes, list[tuple[int, bytes]]]:
    """Each key's (partition, value) in the order stored."""
    records = await read_records(bootstrap, topic, expect, idle_s=0.3, timeout_s=20.0)
    assert len(records) == expect
    by_key: dict[bytes, list[tuple[int, bytes]]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        assert record.key is not None and record.value is not None
        by_key[record.key].append((record.partition, record.value))
    return by_key


async def test_batched_messages_land_where_send_puts_them_in_order(settings_kwargs: dict[str, Any]):
    settings = CommonSettings(**settings_kwargs)  # fresh topics of several partitions
    await ensure_topics(settings)
    bootstrap = settings.kafka_bootstrap_servers
    one_by_one, batched = settings.topic_ticket_events, settings.topic_routing_events
    # 2 KB batches: the 300 messages of ~100 bytes fill several per partition, so full batches
    # are sent and new ones started mid-way.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, max_batch_size=2048
    )
    await producer.start()
    try:
        messages = [(f"api:{i % 40}".encode(), f"{i:04d}".encode() + b"x" * 90) for i in range(300)]
        await asyncio.gather(*[await producer.send(one_by_one, value=v, key=k) for k, v in messages])
        futures = await send_keyed(producer, [(batched, k, v) for k, v in messages])
        assert len(futures) > settings.topic_partitions  # some partitions needed more than one batch
        await asyncio.gather(*futures)
    finally:
        await producer.stop()

    expected = await read_all(bootstrap, one_by_one, len(messages))
    got = await read_all(bootstrap, batched, len(messages))
    assert got == expected
    assert sum(len(values) for values in got.values()) == len(messages)
    assert len({partition for values in got.values() for partition, _ in values}) > 1
