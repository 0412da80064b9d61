"""A fetch that skips an offset is cut at the hole and read again (shared/kafka/continuity.py)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from shared.kafka.consumer import ConsumedEvent, ConsumerLoop
from shared.kafka.continuity import OffsetContinuity
from tests.unit.foundation.test_consumer_loop import (
    TP,
    FakeConsumer,
    FakeProducer,
    good,
    make_loop,
    record,
    run_until,
)

OTHER = TopicPartition("tickets", 1)


def records(*offsets: int) -> list[ConsumerRecord]:
    return [record(offset, b"x") for offset in offsets]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_consecutive_records_pass_whole_and_move_the_expected_offset():
    continuity = OffsetContinuity("g")
    continuity.start_at(TP, 5)
    fetched = {TP: records(5, 6, 7)}
    assert continuity.cut(fetched) == {}
    assert [m.offset for m in fetched[TP]] == [5, 6, 7]
    fetched = {TP: records(8)}
    assert continuity.cut(fetched) == {}


def test_a_fetch_starting_past_the_position_is_dropped_and_sought_back():
    continuity = OffsetContinuity("g")
    continuity.start_at(TP, 5)
    fetched = {TP: records(6, 7)}  # offset 5 was written, not stored yet, when the broker answered
    assert continuity.cut(fetched) == {TP: 5}
    assert fetched == {}
    fetched = {TP: records(5, 6, 7)}  # read again from the hole: all of it
    assert continuity.cut(fetched) == {}
    assert [m.offset for m in fetched[TP]] == [5, 6, 7]


def test_a_hole_inside_a_fetch_keeps_what_comes_before_it():
    continuity = OffsetContinuity("g")
    continuity.start_at(TP, 0)
    continuity.start_at(OTHER, 0)
    fetched = {TP: records(0, 1, 3, 4), OTHER: records(0, 1)}
    assert continuity.cut(fetched) == {TP: 2}
    assert [m.offset for m in fetched[TP]] == [0, 1]
    assert [m.offset for m in fetched[OTHER]] == [0, 1]  # the other partition is untouched
    fetched = {TP: records(2, 3, 4), OTHER: records(2)}
    assert continuity.cut(fetched) == {}


def test_an_unknown_start_checks_only_within_the_fetch():
    continuity = OffsetContinuity("g")
    fetched = {TP: records(10, 11)}
    assert continuity.cut(fetched) == {}  # no position learned: the first record is the start
    assert continuity.cut({TP: records(13)}) == {TP: 12}


def test_a_hole_that_persists_is_accepted_after_the_grace_and_enough_fetches():
    clock = Clock()
    continuity = OffsetContinuity("g", grace_s=2.0, min_fetches=3, clock=clock)
    continuity.start_at(TP, 0)
    assert continuity.cut({TP: records(2, 3)}) == {TP: 0}
    clock.now = 5.0  # long enough, but only the second fetch to show it
    assert continuity.cut({TP: records(2, 3)}) == {TP: 0}
    assert continuity.retry_delay() > 0  # backing off while it persists
    clock.now = 5.5
    fetched = {TP: records(2, 3)}
    assert continuity.cut(fetched) == {}  # the third: a real gap (compaction, deleted records)
    assert [m.offset for m in fetched[TP]] == [2, 3]
    assert continuity.cut({TP: records(4)}) == {}


def test_a_new_hole_starts_its_own_grace():
    clock = Clock()
    continuity = OffsetContinuity("g", grace_s=2.0, min_fetches=2, clock=clock)
    continuity.start_at(TP, 0)
    assert continuity.cut({TP: records(2)}) == {TP: 0}
    assert continuity.retry_delay() == 0  # a first sight is read again at once
    clock.now = 3.0
    assert continuity.cut({TP: records(0, 2)}) == {TP: 1}  # 0 came; now 1 is missing: a new hole
    assert continuity.cut({TP: records(1, 2)}) == {}


def test_forget_drops_what_was_learned():
    continuity = OffsetContinuity("g")
    continuity.start_at(TP, 5)
    continuity.forget()
    assert not continuity.knows(TP)
    assert continuity.cut({TP: records(9)}) == {}


class StoredLateConsumer(FakeConsumer):
    """A broker that fixed offset 1's place before storing it: the first fetch from 1 skips it (as
    tansu's memory storage can), later ones do not. Positions and seeks as aiokafka keeps them."""

    def __init__(self, values: list[bytes]) -> None:
        super().__init__(values)
        self.log = list(self.pending)
        self.position_ = 0
        self.stored_late = {1}
        self.sought: list[int] = []

    async def getmany(self, timeout_ms: int, max_records: int):
        self.position_ = max(self.position_, self.log_start)  # aiokafka's reset to the earliest
        visible = [m for m in self.log if m.offset >= self.position_ and m.offset not in self.stored_late]
        self.stored_late.clear()  # stored by the next fetch
        batch = visible[:max_records]
        if not batch:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        self.position_ = batch[-1].offset + 1
        return {TP: batch}

    async def position(self, tp):
        return self.position_

    async def beginning_offsets(self, partitions):
        return {tp: self.log_start for tp in partitions}

    log_start = 0

    def seek(self, tp, offset):
        self.sought.append(offset)
        self.position_ = max(offset, self.log_start)  # below the log's start: reset to it


async def test_the_loop_reads_again_a_record_the_broker_skipped_and_hands_on_every_offset_in_order():
    consumer, producer = StoredLateConsumer([good(i) for i in range(4)]), FakeProducer()
    consumer.position_ = 1  # the partition's committed offset: 0 was handled before
    handled: list[int] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.extend(e.offset for e in events)

    loop = make_loop(consumer, producer, handler)
    await run_until(loop, lambda: consumer.committed[-1:] == [{TP: 4}])
    assert handled == [1, 2, 3]  # without the cut: [2, 3], and 1 committed past
    assert consumer.sought == [1]


async def test_a_hole_in_the_batch_taken_ahead_is_read_again_after_the_batch_in_hand():
    consumer, producer = StoredLateConsumer([good(i) for i in range(6)]), FakeProducer()
    consumer.stored_late = set()
    fetches = 0
    original = consumer.getmany

    async def getmany(timeout_ms: int, max_records: int):
        nonlocal fetches
        fetches += 1
        if fetches == 2:  # the look-ahead, taken while [0, 1] is in hand: 3 not stored yet
            consumer.stored_late = {3}
        return await original(timeout_ms, max_records)

    consumer.getmany = getmany  # type: ignore[method-assign]
    handled: list[int] = []
    ahead: list[list[int]] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.extend(e.offset for e in events)

    loop = make_loop(
        consumer,
        producer,
        handler,
        batch_max=2,
        on_next_batch=lambda events: ahead.append([e.offset for e in events]),
    )
    await run_until(loop, lambda: consumer.committed[-1:] == [{TP: 6}])
    assert ahead[0] == [2]  # cut at the hole: 4 is not taken ahead of 3
    assert handled == [0, 1, 2, 3, 4, 5]
    assert consumer.sought == [3]


async def test_records_deleted_below_the_log_start_are_no_hole():
    group = "deleted-below-start"
    consumer, producer = StoredLateConsumer([good(i) for i in range(6)]), FakeProducer()
    consumer.stored_late = set()
    consumer.log_start = 3  # retention deleted 0-2; the group's position is still 0
    consumer.log = consumer.log[3:]
    handled: list[int] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.extend(e.offset for e in events)

    loop = ConsumerLoop(
        consumer=consumer,
        producer=producer,
        topics=["tickets"],
        group_id=group,
        handler=handler,
        dead_letter_topic="dlq",
        poll_timeout_ms=10,
    )
    await run_until(loop, lambda: consumer.committed[-1:] == [{TP: 6}])
    assert handled == [3, 4, 5]
    assert consumer.sought == []  # not sought back to 0 over and over
    sample = REGISTRY.get_sample_value
    assert sample("consumer_offset_holes_total", {"group": group, "outcome": "deleted"}) == 1
    assert sample("consumer_offset_holes_total", {"group": group, "outcome": "accepted"}) == 0


class AssignedWhileFetching(StoredLateConsumer):
    """The fetcher hands records from the committed offset while ``on_assign`` is still loading
    the checkpoint it then seeks to (the metrics service's restore)."""

    def __init__(self, values: list[bytes]) -> None:
        super().__init__(values)
        self.stored_late = set()
        self.in_getmany, self.release = asyncio.Event(), asyncio.Event()

    async def getmany(self, timeout_ms: int, max_records: int):
        if not self.in_getmany.is_set():
            self.in_getmany.set()
            await self.release.wait()
        return await super().getmany(timeout_ms, max_records)


async def test_a_checkpoint_seek_sets_where_the_partition_continues():
    consumer, producer = AssignedWhileFetching([good(i) for i in range(30)]), FakeProducer()
    consumer.position_ = 5  # the committed offset; the checkpoint is at 20
    loaded = asyncio.Event()
    handled: list[int] = []

    async def on_assign(tps):
        await loaded.wait()
        return {TP: 20}

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.extend(e.offset for e in events)

    loop = make_loop(consumer, producer, handler, batch_max=3, on_assign=on_assign)
    task = asyncio.create_task(loop.run())
    await consumer.in_getmany.wait()
    assigning = asyncio.create_task(consumer.listener.on_partitions_assigned({TP}))
    await asyncio.sleep(0)
    consumer.release.set()  # records from 5 arrive while the checkpoint loads: dropped at its seek
    await asyncio.sleep(0.05)
    loaded.set()
    await assigning
    async with asyncio.timeout(5):
        while not handled or handled[-1] != 29:
            await asyncio.sleep(0.01)
    loop.stop()
    await task
    assert handled == list(range(20, 30))  # not 8-19 again, as a hole before the checkpoint
    assert consumer.sought == [20]


def test_the_hole_and_dead_letter_series_start_at_zero():
    """An alert on increase() never fires for a series that first appears at 1."""
    OffsetContinuity("zero-start")
    ConsumerLoop(
        consumer=FakeConsumer([]),
        producer=FakeProducer(),
        topics=["tickets"],
        group_id="zero-start",
        handler=lambda events: asyncio.sleep(0),
        dead_letter_topic="dlq",
    )
    sample = REGISTRY.get_sample_value
    for outcome in ("refetched", "accepted", "deleted"):
        assert sample("consumer_offset_holes_total", {"group": "zero-start", "outcome": outcome}) == 0
    for kind in ("undecodable", "rejected", "handler_error"):
        assert sample("dead_letters_total", {"group": "zero-start", "reason": kind}) == 0


async def test_the_fetch_ahead_neither_asks_positions_nor_keeps_them_from_being_learned():
    consumer = StoredLateConsumer([good(i) for i in range(4)])
    consumer.stored_late = set()
    asked: list[TopicPartition] = []
    position = consumer.position

    async def counted_position(tp: TopicPartition) -> int:
        asked.append(tp)
        return await position(tp)

    consumer.position = counted_position  # type: ignore[method-assign]
    loop = make_loop(consumer, FakeProducer(), lambda events: asyncio.sleep(0))
    assert await loop._fetch(0) is None  # right after an assignment: no fetch ahead, nothing asked
    assert asked == [] and loop.learn_after == 0
    batch = await loop._fetch(10)
    assert asked == [TP]
    assert batch is not None and [m.offset for m in batch.records[TP]] == [0, 1, 2, 3]
