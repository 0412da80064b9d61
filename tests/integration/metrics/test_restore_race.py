"""A shard restore racing the fetcher: records read from the committed offsets while checkpoints
load must not reach a restored shard, or the events between checkpoint and commit are skipped."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.metrics.app import _caught_up
from services.metrics.ingest.consumer import BacklogIngest, Shard
from services.metrics.ingest.runner import ingest_runner
from shared.events import EventType, TicketSnapshot, ticket_event
from shared.kafka.consumer import ConsumedEvent
from shared.kafka.fetched import FetchedBatch
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import MetricsSettings

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


async def test_a_shard_restored_behind_the_committed_offset_is_not_caught_up_before_its_replay(
    settings_kwargs: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The previous owner committed its offsets and died before its checkpoint: the new owner's
    fetcher finds nothing new at the committed offset while the shard loads (a lag of 0), and the
    shard is then sought back. That 0 must not make it caught up before it has replayed."""
    settings = MetricsSettings(
        **{**settings_kwargs, "topic_partitions": 1}, metrics_group_id=f"behind-{uuid.uuid4().hex[:8]}"
    )
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(20):
            event = ticket_event(EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=f"t-{i}"))
            await producer.send_and_wait(
                settings.topic_ticket_events, event.to_bytes(), key=event.ticket_key.encode()
            )
        # The first owner reads and commits everything, and dies before any checkpoint.
        first = BacklogIngest(sessions, name=settings.metrics_group_id)
        runner = ingest_runner(settings, producer, first)
        await runner.start()
        try:
            await until(lambda: 0 in first.shards and sum(first.shards[0].state.c_received) == 20)
        finally:
            await runner.stop()  # commits what it handled; no checkpoint (the crash)

        second = BacklogIngest(sessions, name=settings.metrics_group_id)
        load_shard = second._load_shard

        async def slow_load(p: int) -> Shard:  # a large checkpoint: the loop polls meanwhile
            await asyncio.sleep(1.5)
            return await load_shard(p)

        second._load_shard = slow_load  # type: ignore[method-assign]
        runner = ingest_runner(settings, producer, second)
        handle = runner.loop.handler

        async def slow_handler(batch: list[ConsumedEvent]) -> None:
            await asyncio.sleep(1.0)
            await handle(batch)

        runner.loop.handler = slow_handler
        await runner.start()
        try:
            await until(lambda: 0 in second.shards)
            # Restored with no checkpoint, sought to 0: nothing of the 20 is applied yet.
            assert sum(second.shards[0].state.c_received) < 20
            assert not second.caught_up(runner.consumer.assignment(), runner.loop.lag)
            await until(lambda: second.caught_up(runner.consumer.assignment(), runner.loop.lag))
            assert sum(second.shards[0].state.c_received) == 20
        finally:
            await runner.stop()
    finally:
        await producer.stop()


async def until(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_shards_held_over_a_failed_loop_are_not_exported_while_the_new_consumer_joins(
    settings_kwargs: dict[str, Any], sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A consumer loop that fails is replaced without a revocation: its shards stay in hand until
    the new consumer's assignment, while their partitions may already be another instance's.
    Exported (or counted ready) meanwhile, two instances would add up the same tickets."""
    settings = MetricsSettings(
        **{**settings_kwargs, "topic_partitions": 2}, metrics_group_id=f"held-{uuid.uuid4().hex[:8]}"
    )
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    ingest = BacklogIngest(sessions, name=settings.metrics_group_id)
    runner = ingest_runner(settings, producer, ingest)
    ready = _caught_up(runner, ingest)
    await runner.start()
    try:
        await until(lambda: sorted(ingest.shards) == [0, 1] and ready(), timeout_s=60)
        update_lag = runner.loop._update_lag

        async def fail_once(ahead: FetchedBatch | None = None) -> None:
            runner.loop._update_lag = update_lag  # type: ignore[method-assign]
            raise RuntimeError("an error nobody foresaw")

        runner.loop._update_lag = fail_once  # type: ignore[method-assign]
        old = runner.consumer
        await until(lambda: runner.consumer is not old)
        seen_unassigned = False
        while not (runner.consumer.assignment() and ready()):
            assigned = {tp.partition for tp in runner.consumer.assignment()}
            exported = {p for p, _ in ingest.snapshots()}
            assert exported <= assigned, (exported, assigned)
            if not assigned:
                seen_unassigned = True
                assert not ready()
            await asyncio.sleep(0.01)
        assert seen_unassigned
        assert {p for p, _ in ingest.snapshots()} == {0, 1}
    finally:
        await runner.stop()
        await producer.stop()
