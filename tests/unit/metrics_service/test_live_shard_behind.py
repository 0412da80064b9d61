"""A live shard that falls behind its partition's end keeps its events' time: the deadlines the
unread events meet are not missed at the wall clock (it follows the wall clock again once the
consumer has nothing left to read)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from aiokafka import TopicPartition

from services.metrics.backlog import BacklogState
from services.metrics.ingest.consumer import BacklogIngest, Shard
from shared.events import EventEnvelope, EventType
from shared.kafka.consumer import ConsumedEvent
from tests.unit.backlog.helpers import at, envelope, make_state, scrape
from tests.unit.metrics_service.test_shard_clock import Clock

H = 3600.0
ROUTING = "routing"
TP = TopicPartition(ROUTING, 0)
RES_BREACHES = ("sla_breaches_total", (("kind", "resolution"), ("team", "billing")))
WITHIN_4H = ("ticket_resolution_seconds_bucket", (("le", "14400.0"), ("priority", "P3"), ("team", "billing")))


class Partition:
    """The consumer's view of partition 0 of ``routing``: its high watermark and lag."""

    def __init__(self) -> None:
        self.highwater: int | None = None
        self.lag: int | None = None

    def __call__(self, tp: TopicPartition) -> tuple[int | None, int | None]:
        return (self.highwater, self.lag) if tp == TP else (None, None)


def live_ingest(clock: Clock, view: Partition) -> tuple[BacklogIngest, Shard]:
    ingest = BacklogIngest(cast(Any, None), clock=clock)  # no checkpoints here: no database
    ingest.partition_view = view
    shard = ingest.shards[0] = Shard(0, BacklogState(), {}, live=True)
    shard.topics = {ROUTING}  # as on assignment
    return ingest, shard


def events(offset: int, *envelopes: EventEnvelope) -> list[ConsumedEvent]:
    return [ConsumedEvent(e, ROUTING, 0, offset + i) for i, e in enumerate(envelopes)]


def solved_before_due() -> tuple[EventEnvelope, EventEnvelope]:
    """Open at 0, resolution due at 4 h; solved by the router 5 minutes before its due time."""
    opened = make_state("z:1", 0, team="billing", res_due=4 * H, res_warn=3 * H)
    opened.revision = 1
    solved = make_state("z:1", 0, team="billing", status="solved", resolved=4 * H - 300)
    solved.revision = 2
    return envelope(opened, 0, EventType.TICKET_ROUTED), envelope(
        solved, 4 * H - 300, EventType.TICKET_RESOLVED
    )


async def test_a_live_shard_behind_counts_no_breach_its_unread_events_meet() -> None:
    clock, view = Clock(0), Partition()
    ingest, shard = live_ingest(clock, view)
    opened, solved = solved_before_due()
    view.highwater, view.lag = 1, None
    await ingest(events(0, opened))
    # The router solved it (offset 1); the consumer, 10 minutes behind, has not read it yet.
    view.highwater, view.lag = 2, 1
    clock.seconds = 4 * H + 300
    ingest.advance_clocks()  # the ticker, and a scrape, while behind: the events' time stays
    ingest.snapshots()
    assert scrape(shard.state)[RES_BREACHES] == 0
    assert shard.state.now_ms == round(at(0).timestamp() * 1000)

    view.lag = None  # the batch in hand
    await ingest(events(1, solved))
    s = scrape(shard.state)
    assert (s[RES_BREACHES], s[WITHIN_4H]) == (0, 1)
    # Nothing left to read: the wall clock again.
    assert shard.state.now_ms == round(at(4 * H + 300).timestamp() * 1000)


async def test_an_event_read_after_the_deadline_it_met_is_applied_at_its_own_time() -> None:
    """Caught up at the last tick, the solved state is read after the due time in the next batch:
    the deadline passes after it, not before it."""
    clock, view = Clock(0), Partition()
    ingest, shard = live_ingest(clock, view)
    opened, solved = solved_before_due()
    view.highwater, view.lag = 1, None
    await ingest(events(0, opened))
    view.lag = 0
    clock.seconds = 4 * H - 600
    ingest.advance_clocks()
    assert shard.state.now_ms == round(at(4 * H - 600).timestamp() * 1000)

    clock.seconds = 4 * H + 300
    view.highwater, view.lag = 2, None
    await ingest(events(1, solved))
    assert scrape(shard.state)[RES_BREACHES] == 0


async def test_a_caught_up_shard_crosses_deadlines_in_quiet_periods() -> None:
    clock, view = Clock(0), Partition()
    ingest, shard = live_ingest(clock, view)
    opened, _ = solved_before_due()
    view.highwater, view.lag = 1, None
    await ingest(events(0, opened))
    view.lag = 0
    clock.seconds = 4 * H + 1
    ingest.advance_clocks()  # nothing unread, no event for hours: the deadline is missed
    assert scrape(shard.state)[RES_BREACHES] == 1


async def test_a_record_the_shard_never_got_does_not_hold_its_clock() -> None:
    """Below the high watermark but handled by the loop without the shard (dead-lettered as
    undecodable): the loop's lag after the batch is 0, so the shard is not behind."""
    clock, view = Clock(0), Partition()
    ingest, shard = live_ingest(clock, view)
    opened, _ = solved_before_due()
    await ingest(events(0, opened))
    view.highwater, view.lag = 2, 0  # offset 1 was dead-lettered
    assert not ingest.behind(shard)
    view.lag = 1
    assert ingest.behind(shard)


def test_the_partition_view_of_the_runner() -> None:
    # Imported here: the other tests also run against the previous release (no partition_view).
    from services.metrics.ingest.runner import partition_view

    consumer = SimpleNamespace(assignment=lambda: {TP}, highwater=lambda tp: 7)
    loop = SimpleNamespace(in_batch=False, lag={TP: 3})
    runner = cast(Any, SimpleNamespace(consumer=consumer, loop=loop))
    assert partition_view(runner, TP) == (7, 3)
    loop.in_batch = True  # its records may be fetched, not applied: the high watermark decides
    assert partition_view(runner, TP) == (7, None)
    assert partition_view(runner, TopicPartition(ROUTING, 1)) == (None, None)  # not assigned
