"""A shard's clock while it replays: its events' time, not the wall clock, until it is caught up."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.metrics.app import ShardsCollector, _caught_up, _checkpoint_and_tick
from services.metrics.backlog import BacklogState
from services.metrics.ingest.consumer import BacklogIngest, Shard
from shared.events import EventEnvelope, EventType, TicketSnapshot, ticket_event
from shared.kafka.consumer import ConsumedEvent
from shared.settings import MetricsSettings
from tests.cancelling import CancellationTurnedIntoError, ends_when_cancelled
from tests.unit.backlog.helpers import at, envelope, make_state, scrape

H = 3600.0
ROUTING = "routing"


class Clock:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self) -> datetime:
        return at(self.seconds)


def ingest_of(clock: Clock, *partitions: int) -> BacklogIngest:
    ingest = BacklogIngest(cast(Any, None), clock=clock)  # no checkpoints here: no database
    for p in partitions:
        ingest.shards[p] = Shard(p, BacklogState(), {})
    return ingest


def batch(partition: int, envelopes: list[EventEnvelope], first_offset: int = 0) -> list[ConsumedEvent]:
    return [ConsumedEvent(e, ROUTING, partition, first_offset + i) for i, e in enumerate(envelopes)]


def breaches(ingest: BacklogIngest) -> dict[str, float]:
    """sla_breaches_total by kind for team billing, summed over partitions."""
    registry = CollectorRegistry()
    registry.register(ShardsCollector(ingest))
    out = {"first_response": 0.0, "resolution": 0.0}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if s.name == "sla_breaches_total" and s.labels["team"] == "billing":
                out[s.labels["kind"]] += s.value
    return out


def answered_in_time() -> list[EventEnvelope]:
    """Created at 0 (first response due at 30 min, resolution at 4 h), answered at 10 min, solved
    at 1 h; and a second ticket due at 2 h, still open."""
    s1 = make_state("z:1", 0, team="billing", routed=0, fr_due=1800, res_due=4 * H)
    s2 = make_state("z:1", 0, team="billing", routed=0, fr_due=1800, res_due=4 * H, responded=600)
    s2.revision = 1
    s3 = make_state(
        "z:1", 0, team="billing", fr_due=1800, res_due=4 * H, responded=600, status="solved", resolved=H
    )
    s3.revision = 2
    late = make_state("z:2", 0, team="billing", routed=0, res_due=2 * H, responded=60)
    return [
        envelope(s1, 0, EventType.TICKET_ROUTED),
        envelope(late, 0, EventType.TICKET_ROUTED),
        envelope(s2, 600),
        envelope(s3, H, EventType.TICKET_RESOLVED),
    ]


async def test_a_replay_hours_later_counts_the_breaches_of_the_events_time() -> None:
    clock = Clock(5 * H)  # the events are read 5 h after they happened (restart, no checkpoint)
    ingest = ingest_of(clock, 0)
    await ingest(batch(0, answered_in_time()))
    # Scrapes and ticks while replaying leave the clock at the events' time.
    assert breaches(ingest) == {"first_response": 0, "resolution": 0}
    ingest.advance_clocks()
    assert breaches(ingest) == {"first_response": 0, "resolution": 0}

    tps = {TopicPartition(ROUTING, 0)}
    assert ingest.caught_up(tps, {TopicPartition(ROUTING, 0): 0})
    # Caught up: the wall clock, at which ticket z:2 is overdue since 2 h.
    assert breaches(ingest) == {"first_response": 0, "resolution": 1}


async def test_only_the_shards_still_replaying_keep_their_events_time() -> None:
    clock = Clock(5 * H)
    ingest = ingest_of(clock, 0, 1)
    await ingest(batch(0, answered_in_time()[:2]))
    await ingest(batch(1, answered_in_time()[:2]))
    lag = {TopicPartition(ROUTING, 0): 0, TopicPartition(ROUTING, 1): 7}
    assert not ingest.caught_up(set(lag), lag)
    ingest.advance_clocks()
    assert ingest.shards[0].state.now_ms == round(at(5 * H).timestamp() * 1000)
    assert ingest.shards[1].state.now_ms == round(at(0).timestamp() * 1000)

    clock.seconds = 6 * H  # a live shard applies events at the wall clock
    await ingest(batch(0, [envelope(make_state("z:3", 0, team="billing"), 5.5 * H)], first_offset=2))
    assert ingest.shards[0].state.now_ms == round(at(6 * H).timestamp() * 1000)


async def test_a_shard_assigned_again_replays_until_caught_up_again(monkeypatch: pytest.MonkeyPatch) -> None:
    ingest = ingest_of(Clock(5 * H), 0)
    tp = TopicPartition(ROUTING, 0)
    assert ingest.caught_up({tp}, {tp: 0})
    shard = ingest.shards.pop(0)  # revoked, then reused on its return (see BacklogIngest._parked)

    async def reuse(_p: int) -> Shard:
        return shard

    monkeypatch.setattr(ingest, "_load_shard", reuse)
    await ingest.on_assign({tp})
    assert ingest.shards[0] is shard and not shard.live


async def test_a_ticket_event_read_ahead_of_the_routing_topic_does_not_move_a_replaying_clock() -> None:
    """The two topics of a shard are fetched apart: in a replay a batch may hold ticket events hours
    ahead of its routing events. Solved 5 minutes before its resolution deadline, the ticket must
    not count as breached because a later ticket.created came first."""
    ingest = BacklogIngest(cast(Any, None), clock=Clock(10 * H))
    ingest.shards[0] = Shard(0, BacklogState(), {})  # replaying (not live)
    opened = make_state("z:1", 0, team="billing", res_due=4 * H, res_warn=3 * H)
    opened.revision = 1
    solved = make_state("z:1", 0, team="billing", status="solved", resolved=4 * H - 300)
    solved.revision = 2
    later = ticket_event(EventType.TICKET_CREATED, "api", TicketSnapshot(external_id="9"), at(5 * H))
    await ingest([ConsumedEvent(envelope(opened, 0, EventType.TICKET_ROUTED), "routing", 0, 0)])
    await ingest(
        [
            ConsumedEvent(later, "tickets", 0, 0),
            ConsumedEvent(envelope(solved, 4 * H - 300, EventType.TICKET_RESOLVED), "routing", 0, 1),
        ]
    )
    breached = scrape(ingest.shards[0].state)[
        ("sla_breaches_total", (("kind", "resolution"), ("team", "billing")))
    ]
    assert breached == 0


async def test_checkpoints_keep_their_interval_under_a_longer_clock_tick() -> None:
    """METRICS_CHECKPOINT_INTERVAL_S is how often shards are checkpointed, whatever the clock's
    tick: a checkpoint waited for the next tick (every 5 s by default), so an interval below it
    (less to replay after a crash) was not kept, and a longer tick stretched every interval."""
    checkpoints = 0

    class Ingest:
        def advance_clocks(self) -> None:
            pass

        async def checkpoint(self) -> None:
            nonlocal checkpoints
            checkpoints += 1

    settings = MetricsSettings(metrics_clock_tick_s=60.0, metrics_checkpoint_interval_s=0.05)
    task = asyncio.create_task(_checkpoint_and_tick(cast(Any, Ingest()), settings, lambda: True))
    await asyncio.sleep(0.5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert 5 <= checkpoints <= 11


async def test_the_checkpoint_loop_ends_when_a_checkpoint_turns_its_cancellation_into_an_error() -> None:
    """A checkpoint cancelled while the database is away may fail with the error of the driver's
    cleanup (a rollback in a ``finally``) instead of the cancellation: taken for a failed
    checkpoint, the loop ran on and the service's shutdown, awaiting it, never ended."""
    checkpoint = CancellationTurnedIntoError()

    class Ingest:
        def advance_clocks(self) -> None:
            pass

    ingest = Ingest()
    ingest.checkpoint = checkpoint  # type: ignore[attr-defined]
    settings = MetricsSettings(metrics_clock_tick_s=60.0, metrics_checkpoint_interval_s=0.01)
    task = asyncio.create_task(_checkpoint_and_tick(cast(Any, ingest), settings, lambda: True))
    await asyncio.wait_for(checkpoint.started.wait(), 5)
    assert await ends_when_cancelled(task), (
        f"still running after its cancellation ({checkpoint.calls} checkpoints)"
    )


def test_a_consumer_joining_the_group_again_is_not_caught_up() -> None:
    """A consumer replaced after a stuck rebalance joins as a new member with no partitions yet
    (the old one's shards were revoked): until it is assigned, the instance serves nothing, and
    ``metrics_backlog_caught_up`` and /readyz must not say it is caught up."""
    ingest = ingest_of(Clock(5 * H))
    loop = SimpleNamespace(assigned_once=True, rebalance_started=None, lag={})
    runner = cast(Any, SimpleNamespace(consumer=SimpleNamespace(assignment=set), loop=loop))
    caught_up = _caught_up(runner, ingest)
    assert caught_up()  # assigned nothing in a settled group (more instances than partitions)
    loop.rebalance_started = 1.0  # the new consumer's run() began joining
    assert not caught_up()
