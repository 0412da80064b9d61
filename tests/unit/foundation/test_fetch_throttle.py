"""Throttled topics: fetched at most once an interval once caught up, nothing skipped, the other
topics at full speed (shared/kafka/throttle.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord

from shared.kafka.consumer import ConsumedEvent, ConsumerLoop
from shared.kafka.throttle import FetchThrottle
from tests.unit.foundation.test_consumer_loop import FakeProducer, good, record

TICKETS = TopicPartition("tickets", 0)
ROUTING = TopicPartition("routing", 0)


class PausingConsumer:
    """Partitions written while the loop runs; paused ones are left out of fetches, as aiokafka's
    fetcher does, and a fetch reports each partition's end as its high watermark."""

    def __init__(self, partitions: list[TopicPartition]) -> None:
        self.log: dict[TopicPartition, list[ConsumerRecord]] = {tp: [] for tp in partitions}
        self.positions = dict.fromkeys(partitions, 0)
        self.paused_tps: set[TopicPartition] = set()
        self.fetched_from: list[set[TopicPartition]] = []  # per fetch that returned records
        self.listener: Any = None
        self.seen_highwater: dict[TopicPartition, int] = {}

    def write(self, tp: TopicPartition, value: bytes) -> None:
        self.log[tp].append(record(len(self.log[tp]), value, tp))

    def subscribe(self, topics, listener=None):
        self.listener = listener

    def assignment(self):
        return set(self.log)

    def pause(self, *tps: TopicPartition) -> None:
        for tp in tps:
            if tp not in self.log:
                raise IllegalStateError(f"not assigned: {tp}")
            self.paused_tps.add(tp)

    def resume(self, *tps: TopicPartition) -> None:
        for tp in tps:
            if tp not in self.log:
                raise IllegalStateError(f"not assigned: {tp}")
            self.paused_tps.discard(tp)

    def _fetchable(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        out = {}
        for tp, log in self.log.items():
            if tp not in self.paused_tps and self.positions[tp] < len(log):
                out[tp] = log[self.positions[tp] :]
        return out

    async def getmany(self, timeout_ms: int, max_records: int):
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        while not (ready := self._fetchable()) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.002)
        out = {}
        for tp, records in ready.items():
            taken = records[:max_records]
            self.positions[tp] += len(taken)
            self.seen_highwater[tp] = len(self.log[tp])
            out[tp] = taken
        if out:
            self.fetched_from.append(set(out))
        return out

    def highwater(self, tp):
        assert tp in self.log, "Partition is not assigned"  # as aiokafka's
        return self.seen_highwater.get(tp)

    async def position(self, tp):
        return self.positions[tp]

    def seek(self, tp, offset):
        self.positions[tp] = offset

    async def commit(self, offsets):
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fetched(consumer: PausingConsumer, tp: TopicPartition, offset_to: int) -> dict[TopicPartition, list]:
    consumer.seen_highwater[tp] = len(consumer.log[tp])
    return {tp: consumer.log[tp][:offset_to]}


def test_a_caught_up_partition_of_a_throttled_topic_is_paused_for_the_interval():
    consumer = PausingConsumer([TICKETS, ROUTING])
    for _ in range(3):
        consumer.write(TICKETS, b"t")
        consumer.write(ROUTING, b"r")
    clock = Clock()
    throttle = FetchThrottle(["tickets"], 0.5, clock=clock)

    throttle.after_fetch(consumer, {**fetched(consumer, TICKETS, 3), **fetched(consumer, ROUTING, 3)})
    assert consumer.paused_tps == {TICKETS}  # the routing topic is not throttled
    assert throttle.wait_ms(200) == 200  # the resumption is further away than the poll
    clock.now += 0.4
    throttle.resume_due(consumer)
    assert consumer.paused_tps == {TICKETS}
    assert throttle.wait_ms(200) == 100  # the poll ends at the resumption
    clock.now += 0.1
    throttle.resume_due(consumer)
    assert consumer.paused_tps == set() and throttle.paused() == set()


def test_a_partition_behind_its_end_is_not_paused():
    consumer = PausingConsumer([TICKETS])
    for _ in range(5):
        consumer.write(TICKETS, b"t")
    throttle = FetchThrottle(["tickets"], 0.5, clock=Clock())
    throttle.after_fetch(consumer, fetched(consumer, TICKETS, 3))  # 3 of 5: a backlog drains first
    assert consumer.paused_tps == set()
    throttle.after_fetch(consumer, fetched(consumer, TICKETS, 5))
    assert consumer.paused_tps == {TICKETS}


def test_a_partition_taken_away_is_neither_paused_nor_resumed_and_forget_drops_all():
    consumer = PausingConsumer([ROUTING])
    gone = TopicPartition("tickets", 3)
    clock = Clock()
    throttle = FetchThrottle(["tickets"], 0.5, clock=clock)
    consumer.seen_highwater[gone] = 1
    throttle.after_fetch(consumer, {gone: [record(0, b"{}", gone)]})  # revoked between fetch and check
    assert throttle.paused() == set() and consumer.paused_tps == set()

    consumer.log[gone] = [record(0, b"{}", gone)]
    consumer.positions[gone] = 1
    throttle.after_fetch(consumer, {gone: consumer.log[gone]})
    assert throttle.paused() == {gone}
    del consumer.log[gone]  # revoked while paused
    clock.now += 1
    throttle.resume_due(consumer)  # no IllegalStateError
    assert throttle.paused() == set()

    consumer.log[gone] = [record(0, b"{}", gone)]
    throttle.after_fetch(consumer, {gone: consumer.log[gone]})
    throttle.forget()
    assert throttle.paused() == set() and throttle.wait_ms(200) == 200


def throttled_loop(
    consumer: PausingConsumer, handler: Any, throttle: FetchThrottle | None, poll_timeout_ms: int = 200
) -> ConsumerLoop:
    return ConsumerLoop(
        consumer=consumer,
        producer=FakeProducer(),
        topics=sorted({tp.topic for tp in consumer.log}),
        group_id="test",
        handler=handler,
        dead_letter_topic="dlq",
        poll_timeout_ms=poll_timeout_ms,
        throttle=throttle,
    )


def test_an_interval_of_zero_switches_the_throttle_off():
    assert not FetchThrottle(["tickets"], 0).enabled
    assert not FetchThrottle([], 1).enabled
    off = FetchThrottle(["tickets"], 0)
    assert throttled_loop(PausingConsumer([TICKETS]), lambda events: asyncio.sleep(0), off).throttle is None


async def run_writing(throttle: FetchThrottle | None, seconds: float) -> tuple[PausingConsumer, list]:
    """Both topics written every 5 ms while the loop runs; then until all is handled."""
    consumer = PausingConsumer([TICKETS, ROUTING])
    handled: list[tuple[str, int]] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.extend((event.topic, event.offset) for event in events)

    loop = throttled_loop(consumer, handler, throttle, poll_timeout_ms=200)
    task = asyncio.create_task(loop.run())
    n = 0
    async with asyncio.timeout(10):
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            consumer.write(TICKETS, good(n))
            consumer.write(ROUTING, good(n))
            n += 1
            await asyncio.sleep(0.005)
        while len(handled) < 2 * n:
            await asyncio.sleep(0.01)
    loop.stop()
    await task
    return consumer, handled


async def test_the_loop_reads_a_throttled_topic_in_few_full_fetches_and_hands_on_every_record():
    consumer, handled = await run_writing(FetchThrottle(["tickets"], 0.25), seconds=1.0)

    for tp in (TICKETS, ROUTING):
        offsets = [offset for topic, offset in handled if topic == tp.topic]
        assert offsets == list(range(len(consumer.log[tp])))  # each once, in order
    ticket_fetches = sum(TICKETS in tps for tps in consumer.fetched_from)
    routing_fetches = sum(ROUTING in tps for tps in consumer.fetched_from)
    # ~1 s at one fetch per 0.25 s, plus the first and the drain at the end.
    assert ticket_fetches <= 7, consumer.fetched_from
    assert routing_fetches >= 3 * ticket_fetches
    assert consumer.paused_tps <= {TICKETS}


async def test_without_the_throttle_every_fetch_reads_both_topics():
    consumer, handled = await run_writing(None, seconds=0.5)
    ticket_fetches = sum(TICKETS in tps for tps in consumer.fetched_from)
    assert ticket_fetches > 20  # what the throttle saves (the test above)
    assert len(handled) == 2 * len(consumer.log[TICKETS])


async def test_an_assignment_forgets_what_was_paused():
    """aiokafka's partition states are new after a rebalance (not paused): the throttle must not
    keep a resumption time for them, or wait_ms would cut every poll short meanwhile."""
    consumer = PausingConsumer([TICKETS])
    consumer.write(TICKETS, good(0))
    handled: list[int] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.extend(event.offset for event in events)

    throttle = FetchThrottle(["tickets"], 30.0)
    loop = throttled_loop(consumer, handler, throttle, poll_timeout_ms=10)
    task = asyncio.create_task(loop.run())
    try:
        async with asyncio.timeout(5):
            while not handled:
                await asyncio.sleep(0.01)
            assert throttle.paused() == {TICKETS}
            consumer.paused_tps.clear()  # what a rebalance does to aiokafka's states
            await consumer.listener.on_partitions_assigned({TICKETS})
            assert throttle.paused() == set()
            consumer.write(TICKETS, good(1))
            while len(handled) < 2:  # read at once, not 30 s later
                await asyncio.sleep(0.01)
    finally:
        loop.stop()
        await task
    assert handled == [0, 1]
