"""A fetch that skips an offset is cut at the hole and read again (shared/kafka/continuity.py)."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.kafka.consumer import ConsumedEvent
from shared.kafka.continuity import OffsetContinuity
from tests.unit.foundation.test_consumer_loop import TP, FakeConsumer, FakeProducer, good, make_loop, record

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
        visible = [m for m in self.log[self.position_ :] if m.offset not in self.stored_late]
        self.stored_late.clear()  # stored by the next fetch
        batch = visible[:max_records]
        if not batch:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        self.position_ = batch[-1].offset + 1
        return {TP: batch}

    async def position(self, tp):
        return self.position_

    def seek(self, tp, offset):
        self.sought.append(offset)
        self.position_ = offset


async def test_the_loop_reads_again_a_record_the_broker_skipped_and_hands_on_every_offset_in_order():
    consumer, producer = StoredLateConsumer([good(i) for i in range(4)]), FakeProducer()
    consumer.position_ = 1  # the partition's committed offset: 0 was handled before
    handled: list[int] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.extend(e.offset for e in events)

    loop = make_loop(consumer, producer, handler)
    task = asyncio.create_task(loop.run())
    async with asyncio.timeout(5):
        while not consumer.committed or consumer.committed[-1] != {TP: 4}:
            await asyncio.sleep(0.01)
    loop.stop()
    await task
    assert handled == [1, 2, 3]  # without the cut: [2, 3], and 1 committed past
    assert consumer.sought == [1]
