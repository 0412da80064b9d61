"""Reading a topic from its start, as the tests check what was published."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord


async def read_records(
    bootstrap: str, topic: str, expected: int, *, idle_s: float = 1.0, timeout_s: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic``: waits for ``expected`` of them, then ``idle_s`` more for extras
    (so a test sees a duplicate too); by ``timeout_s``, what arrived so far."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                records += messages
                last_new = time.monotonic() if messages else last_new
            if len(records) >= expected and time.monotonic() - last_new >= idle_s:
                break
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records
