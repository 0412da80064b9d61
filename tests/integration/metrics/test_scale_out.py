"""Two metrics instances in one consumer group on the real broker: partitions move between them
(join, leave) and the sum of their exposition always equals the ground truth of the stream."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.metrics.backlog import BacklogCollector, BacklogState
from services.metrics.ingest.consumer import BacklogIngest
from services.metrics.ingest.runner import ingest_runner
from services.metrics.models import MetricsCheckpoint
from shared.events import TICKET_EVENT_TYPES, EventEnvelope, utc_now
from shared.kafka.producer import make_producer
from shared.kafka.runner import ConsumerRunner
from shared.kafka.topics import ensure_topics
from shared.settings import MetricsSettings

from .truth import Key, Stream, Truth


@dataclass
class Instance:
    ingest: BacklogIngest
    runner: ConsumerRunner
    producer: AIOKafkaProducer

    async def stop(self) -> None:
        """What the lifespan does: finish the batch, checkpoint every shard, leave the group."""
        await self.runner.drain()
        await self.ingest.checkpoint()
        await self.runner.stop()
        await self.producer.stop()

    def partitions(self) -> set[int]:
        return set(self.ingest.shards)


class Union(BacklogCollector):
    def __init__(self, instances: list[Instance], now: datetime) -> None:
        super().__init__(BacklogState(), clock=lambda: now)
        self.instances = instances

    def states(self) -> list[BacklogState]:
        return [s for i in self.instances for s in i.ingest.states()]


def scrape(instances: list[Instance], now: datetime) -> dict[Key, float]:
    """One registry per instance, parsed and summed like sum by (labels) in PromQL."""
    out: dict[Key, float] = {}
    for instance in instances:
        registry = CollectorRegistry()
        registry.register(Union([instance], now))
        for family in text_string_to_metric_families(generate_latest(registry).decode()):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if sample.name in ("ticket_oldest_open_age_seconds",):
                    out[key] = max(out.get(key, 0.0), sample.value)  # max() by team in PromQL
                elif not sample.name.startswith(
                    ("ticket_backlog_time_to_clear", "ticket_agents", "ticket_net")
                ):
                    out[key] = out.get(key, 0.0) + sample.value
    return out


async def start_instance(settings: MetricsSettings, sessions: async_sessionmaker[AsyncSession]) -> Instance:
    producer = make_producer(settings)
    await producer.start()
    ingest = BacklogIngest(sessions, name=settings.metrics_group_id)
    runner = ingest_runner(settings, producer, ingest)
    await runner.start()
    return Instance(ingest, runner, producer)


async def produce(settings: MetricsSettings, events: list[EventEnvelope], truth: Truth) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for event in events:
            topic = (
                settings.topic_ticket_events
                if event.type in TICKET_EVENT_TYPES
                else settings.topic_routing_events
            )
            await producer.send_and_wait(topic, event.to_bytes(), key=event.ticket_key.encode())
            truth.apply(event, round(time.time() * 1000))
    finally:
        await producer.stop()


async def settle(instances: list[Instance], truth: Truth, timeout_s: float = 60) -> None:
    """All 3 partitions owned exactly once, every instance caught up, every creation counted."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        owned = [p for i in instances for p in i.partitions()]
        caught_up = all(
            i.runner.loop.assigned_once
            and len(i.runner.loop.lag) == len(i.runner.consumer.assignment())
            and i.runner.loop.total_lag() == 0
            and i.ingest.caught_up(i.runner.consumer.assignment(), i.runner.loop.lag)
            for i in instances
        )
        received = sum(sum(s.c_received) for i in instances for s in i.ingest.states())
        if sorted(owned) == [0, 1, 2] and caught_up and received == sum(truth.received.values()):
            return
        await asyncio.sleep(0.1)
    lags = [dict(i.runner.loop.lag) for i in instances]
    raise AssertionError(
        f"did not settle: {[i.partitions() for i in instances]} lag={lags} caught_up={caught_up} "
        f"received={received} expected={sum(truth.received.values())}"
    )


def assert_matches(instances: list[Instance], truth: Truth) -> None:
    now = utc_now()
    got = scrape(instances, now)
    exp = {
        k: v
        for k, v in truth.expected(round(now.timestamp() * 1000)).items()
        if not k[0].startswith(("ticket_backlog_time_to_clear", "ticket_agents", "ticket_net"))
    }
    assert set(got) == set(exp), sorted(set(got) ^ set(exp))
    for key, value in exp.items():
        if key[0].endswith(("_sum", "_gsum")):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key
        else:
            assert got[key] == value, (key, got[key], value)
    # The derived gauges are recomputed from the union of the shards, never summed.
    single = {k: v for k, v in _scrape_union(instances, now).items()}
    full = truth.expected(round(now.timestamp() * 1000))
    for key, value in full.items():
        if key[0].startswith(("ticket_backlog_time_to_clear", "ticket_agents", "ticket_net")):
            assert single[key] == value, key


def _scrape_union(instances: list[Instance], now: datetime) -> dict[Key, float]:
    registry = CollectorRegistry()
    registry.register(Union(instances, now))
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(generate_latest(registry).decode())
        for s in f.samples
    }


async def test_partitions_move_between_instances_without_double_counting(
    settings_kwargs: dict[str, object], sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    settings = MetricsSettings.model_validate(
        {
            **settings_kwargs,
            "database_url": database_url,
            "metrics_group_id": f"metrics-{uuid.uuid4().hex[:8]}",
            "consumer_poll_timeout_ms": 50,
        }
    )
    await ensure_topics(settings)
    stream, truth = Stream(datetime.now(UTC), random.Random(7)), Truth()

    def steps(n: int) -> list[EventEnvelope]:
        return [env for _ in range(n) for env in stream.step()]

    a = await start_instance(settings, sessions)
    b: Instance | None = None
    try:
        await produce(settings, steps(150), truth)
        await settle([a], truth)
        assert a.partitions() == {0, 1, 2}
        assert_matches([a], truth)

        b = await start_instance(settings, sessions)  # join: A checkpoints and hands over
        await produce(settings, steps(150), truth)
        await settle([a, b], truth)
        assert a.partitions() and b.partitions() and not a.partitions() & b.partitions()
        assert_matches([a, b], truth)

        await b.stop()  # leave: A takes B's partitions from B's final checkpoints
        b = None
        await produce(settings, steps(100), truth)
        await settle([a], truth)
        assert a.partitions() == {0, 1, 2}
        assert_matches([a], truth)
    finally:
        if b is not None:
            await b.stop()
        await a.stop()
    async with sessions() as session:
        names = set(
            await session.scalars(
                select(MetricsCheckpoint.name).where(
                    MetricsCheckpoint.name.like(f"{settings.metrics_group_id}:%")
                )
            )
        )
    assert names == {f"{settings.metrics_group_id}:{p}" for p in range(3)}
