"""The ingest after what goes wrong around it: a crash between checkpoints, a damaged checkpoint,
a consumer replaced without a revocation, an event it cannot read, a source clock running ahead."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.metrics.app import _caught_up
from services.metrics.backlog import BacklogState
from services.metrics.ingest.consumer import BacklogIngest
from services.metrics.models import MetricsCheckpoint
from shared.events import (
    EventEnvelope,
    EventType,
    RoutingPayload,
    SlaState,
    TicketSnapshot,
    TicketState,
    routing_event,
    ticket_event,
)
from shared.kafka.consumer import ConsumedEvent
from tests.unit.metrics_service.test_partition_counters import scrape

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BOTH = {TopicPartition("tickets", 0), TopicPartition("routing", 0)}


def state(key: str, revision: int, status: str, *, resolution_due: datetime | None = None) -> TicketState:
    return TicketState(
        ticket_key=key,
        source="zendesk",
        revision=revision,
        status=status,
        team="billing",
        priority="P3",
        created_at=T0,
        routed_at=T0,
        resolved_at=None if status == "open" else T0 + timedelta(minutes=5),
        sla=SlaState(resolution_due=resolution_due),
    )


def routing(kind: EventType, st: TicketState, when: datetime, offset: int) -> ConsumedEvent:
    return ConsumedEvent(
        routing_event(kind, RoutingPayload(state=st), when, uuid.uuid4()), "routing", 0, offset
    )


def routed_then_resolved(n: int) -> list[ConsumedEvent]:
    events = []
    for i in range(n):
        events.append(routing(EventType.TICKET_ROUTED, state(f"z:{i}", 1, "open"), T0, 2 * i))
        resolved = state(f"z:{i}", 2, "solved")
        events.append(routing(EventType.TICKET_RESOLVED, resolved, T0 + timedelta(minutes=5), 2 * i + 1))
    return events


def resolved_series(ingest: BacklogIngest) -> dict[tuple[tuple[str, str], ...], float]:
    _, counters = scrape(ingest)
    return {labels: v for (name, labels), v in counters.items() if name == "tickets_resolved_total"}


async def test_a_restored_shard_exports_its_counters_only_once_caught_up(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    name = f"crash-{uuid.uuid4().hex[:8]}"
    events = routed_then_resolved(10)
    first = BacklogIngest(sessions, name=name, clock=lambda: T0 + timedelta(hours=1))
    await first.on_assign(BOTH)
    first.caught_up(BOTH, {tp: 0 for tp in BOTH})  # empty topics: live at once
    await first(events[:10])
    await first.checkpoint()
    await first(events[10:])
    before = resolved_series(first)
    assert sum(before.values()) == 10
    # The process dies without a checkpoint; its restart restores 5 of the 10 resolutions.
    second = BacklogIngest(sessions, name=name, clock=lambda: T0 + timedelta(hours=1))
    seeks = await second.on_assign(BOTH)
    assert sum(second.shards[0].state.c_resolved) == 5
    # Exported now, 5 on the same series would read as a counter reset (increase() counts it all).
    assert resolved_series(second) == {}
    await second(events[seeks[TopicPartition("routing", 0)] :])
    second.caught_up(BOTH, {tp: 0 for tp in BOTH})
    assert resolved_series(second) == before


async def test_a_damaged_checkpoint_is_replayed_from_the_start_and_the_others_restore(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    name = f"damaged-{uuid.uuid4().hex[:8]}"
    good = BacklogState().to_checkpoint()
    async with sessions() as session, session.begin():
        session.add(
            MetricsCheckpoint(name=f"{name}:0", state=good[: len(good) // 2], offsets={"tickets:0": 5})
        )
        session.add(MetricsCheckpoint(name=f"{name}:1", state=good, offsets={"tickets:1": 7}))
    ingest = BacklogIngest(sessions, name=name)
    seeks = await ingest.on_assign({TopicPartition("tickets", 0), TopicPartition("tickets", 1)})
    assert seeks == {TopicPartition("tickets", 0): 0, TopicPartition("tickets", 1): 7}
    assert sorted(ingest.shards) == [0, 1]


async def test_a_replaced_consumer_keeps_no_shard_of_a_partition_now_owned_elsewhere(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    name = f"replaced-{uuid.uuid4().hex[:8]}"
    ingest = BacklogIngest(sessions, name=name, clock=lambda: T0 + timedelta(hours=1))
    two = {TopicPartition("routing", 0), TopicPartition("routing", 1)}
    await ingest.on_assign(two)
    await ingest(routed_then_resolved(2))
    await ingest.checkpoint()
    # The loop failed; its replacement joins as a new member (no revocation) and gets partition 0.
    seeks = await ingest.on_assign({TopicPartition("routing", 0)})
    assert sorted(ingest.shards) == [0]  # partition 1 is another instance's: not exported twice
    assert seeks == {TopicPartition("routing", 0): 4}
    assert sum(ingest.shards[0].state.c_resolved) == 2  # still described by its checkpoint: reused


async def test_an_event_that_cannot_be_applied_fails_every_attempt_and_one_with_unix_times_is_applied(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ingest = BacklogIngest(
        sessions, name=f"unread-{uuid.uuid4().hex[:8]}", clock=lambda: T0 + timedelta(hours=1)
    )
    await ingest.on_assign({TopicPartition("routing", 0)})

    def event(created_at: object, offset: int) -> EventEnvelope:
        raw_state = state(f"z:{offset}", 1, "open").model_dump(mode="json")
        raw_state["created_at"] = created_at
        return EventEnvelope(
            type=EventType.TICKET_ROUTED,
            ticket_key=f"z:{offset}",
            occurred_at=T0,
            source="zendesk",
            payload={"state": raw_state},
        )

    # Unix seconds are a valid time in the contract (pydantic reads them): applied.
    valid = EventEnvelope.decode(event(int(T0.timestamp()), 0).to_bytes())[0]
    await ingest([ConsumedEvent(valid, "routing", 0, 0)])
    assert ingest.shards[0].state.snapshot().n_open == 1
    # One the state cannot read (not decoded here: decoding refuses it) fails each attempt, so the
    # loop can dead-letter it; recording its id first made the retry pass it as already seen, and
    # the offset moved on without it.
    unreadable = ConsumedEvent(event([1, 2], 1), "routing", 0, 1)
    for _ in range(2):
        with pytest.raises(ValidationError):
            await ingest([unreadable])
    assert ingest.shards[0].next_offsets == {"routing:0": 1}


async def test_a_source_clock_running_ahead_does_not_move_a_replaying_shard_past_deadlines(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    wall = T0 + timedelta(hours=10)  # replaying 10 hours after the events
    ingest = BacklogIngest(sessions, name=f"skew-{uuid.uuid4().hex[:8]}", clock=lambda: wall)
    await ingest.on_assign(BOTH)
    due = T0 + timedelta(hours=2)
    routed = routing(EventType.TICKET_ROUTED, state("z:1", 1, "open", resolution_due=due), T0, 0)
    # Another ticket's comment, its occurred_at a year ahead (the source's clock); produced at T0.
    skewed = ticket_event(
        EventType.TICKET_COMMENTED,
        "zendesk",
        TicketSnapshot(external_id="2"),
        occurred_at=T0 + timedelta(days=365),
    )
    skewed.produced_at = T0 + timedelta(minutes=1)
    resolved = routing(EventType.TICKET_RESOLVED, state("z:1", 2, "solved"), T0 + timedelta(minutes=5), 1)
    await ingest([routed, ConsumedEvent(skewed, "tickets", 0, 0), resolved])
    snap = ingest.shards[0].state.snapshot()
    assert snap.teams["billing"].breaches == [0, 0]  # resolved in 5 minutes of a 2-hour target


async def test_shards_held_over_a_replaced_consumer_assigned_nothing_are_dropped(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    name = f"held-{uuid.uuid4().hex[:8]}"
    ingest = BacklogIngest(sessions, name=name, clock=lambda: T0 + timedelta(hours=1))
    await ingest.on_assign({TopicPartition("routing", 0), TopicPartition("routing", 1)})
    # The loop failed; its replacement joined a group that had no partition left for it (another
    # instance took both): no on_assign comes for an empty assignment to drop the shards held.
    loop = SimpleNamespace(assigned_once=True, rebalance_started=None, lag={})
    runner = cast(Any, SimpleNamespace(consumer=SimpleNamespace(assignment=set), loop=loop))
    ingest.assignment = runner.consumer.assignment  # as ingest_runner wires it
    caught_up = _caught_up(runner, ingest)
    assert caught_up()  # settled with nothing to serve: ready, not held unready for good
    assert ingest.shards == {} and ingest.snapshots() == []  # nor exported, checkpointed, kept


async def test_events_applied_before_one_that_fails_are_checkpointed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    name = f"partial-{uuid.uuid4().hex[:8]}"
    ingest = BacklogIngest(sessions, name=name, clock=lambda: T0 + timedelta(hours=1))
    await ingest.on_assign({TopicPartition("routing", 0)})
    events = routed_then_resolved(2)
    await ingest(events[:1])
    await ingest.checkpoint()
    # The batch's second event cannot be applied: the loop retries it, then dead-letters it. The
    # first is in the state; the next checkpoint must say so (or a restart reads the bad one again).
    bad = routing(EventType.TICKET_ROUTED, state("z:9", 1, "open"), T0, 2)
    bad.envelope.payload["state"]["created_at"] = [1, 2]
    with pytest.raises(ValidationError):
        await ingest([events[1], bad])
    await ingest.checkpoint()
    async with sessions() as session:
        row = await session.get(MetricsCheckpoint, f"{name}:0")
    assert row is not None and row.offsets == {"routing:0": 2}
