"""The consumer loop's delivery semantics, with an in-memory consumer and producer."""

import asyncio
import dataclasses
import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy.exc
from aiokafka import TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    GroupAuthorizationFailedError,
    IllegalStateError,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NoBrokersAvailable,
    NotLeaderForPartitionError,
    ProducerClosed,
    RecordTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownError,
)
from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import DBAPIError, OperationalError

from shared.events import EventType, TicketSnapshot, ticket_event
from shared.kafka.consumer import CONSUMER_LAG, ConsumedEvent, ConsumerLoop, PoisonMessage, is_transient
from shared.kafka.fetched import DECODE_SLICE, FetchedBatch
from shared.overlap import IdleWork

TP = TopicPartition("tickets", 0)


def record(offset: int, value: bytes | None, tp: TopicPartition = TP) -> ConsumerRecord:
    return ConsumerRecord(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"k",
        value=value,
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=-1 if value is None else len(value),
        headers=(),
    )


def good(n: int) -> bytes:
    snapshot = TicketSnapshot(external_id=str(n), subject=f"ticket {n}")
    return ticket_event(
        EventType.TICKET_CREATED, "api", snapshot, datetime(2026, 1, 1, tzinfo=UTC)
    ).to_bytes()


class FakeConsumer:
    def __init__(self, values: list[bytes]) -> None:
        self.pending = [record(i, v) for i, v in enumerate(values)]
        self.committed: list[dict[TopicPartition, int]] = []
        self.listener: Any = None

    def subscribe(self, topics, listener=None):
        self.listener = listener

    async def getmany(self, timeout_ms: int, max_records: int):
        if not self.pending:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        batch, self.pending = self.pending[:max_records], self.pending[max_records:]
        return {TP: batch}

    async def commit(self, offsets):
        self.committed.append(dict(offsets))

    def assignment(self):
        return {TP}

    def highwater(self, tp):
        return 10

    async def position(self, tp):
        return 10 - len(self.pending)

    async def end_offsets(self, partitions):
        return {tp: self.end for tp in partitions}

    end = 10  # what the broker holds; the fetches' high watermark stays at 10


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, list]] = []
        self.dead_lettered: list[ConsumerRecord] = []

    async def send_and_wait(self, topic, value, key=None, headers=None):
        self.sent.append((topic, value, headers or []))
        self.dead_lettered.append(dataclasses.replace(record(-1, value), key=key, headers=headers or []))


async def run_until(loop: ConsumerLoop, condition, timeout: float = 5.0) -> None:
    task = asyncio.create_task(loop.run())
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    finally:
        loop.stop()
        await task


def make_loop(consumer, producer, handler, **kwargs) -> ConsumerLoop:
    return ConsumerLoop(
        consumer=consumer,
        producer=producer,
        topics=["tickets"],
        group_id="test",
        handler=handler,
        dead_letter_topic="dlq",
        batch_max=kwargs.pop("batch_max", 100),
        poll_timeout_ms=10,
        backoff_max_s=kwargs.pop("backoff_max_s", 0.02),
        **kwargs,
    )


async def test_commits_only_after_the_handler_returned():
    consumer, producer = FakeConsumer([good(1), good(2)]), FakeProducer()
    seen: list[str] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        assert not consumer.committed  # nothing committed before our effects are durable
        seen.extend(e.envelope.ticket_key for e in events)
        # Each ticket event comes with the snapshot its decoding validated.
        assert all(e.ticket == e.envelope.ticket() and e.ticket is not None for e in events)

    loop = make_loop(consumer, producer, handler)
    await run_until(loop, lambda: consumer.committed)
    assert seen == ["api:1", "api:2"]
    assert consumer.committed == [{TP: 2}]
    assert loop.total_lag() == 0


async def test_poison_goes_to_the_dead_letter_topic_with_a_reason_and_is_committed_past():
    consumer, producer = FakeConsumer([b"not json", good(1)]), FakeProducer()
    handled: list[str] = []

    async def handler(events):
        handled.extend(e.envelope.ticket_key for e in events)

    await run_until(make_loop(consumer, producer, handler), lambda: consumer.committed)
    assert handled == ["api:1"]
    assert len(producer.sent) == 1
    topic, value, headers = producer.sent[0]
    assert topic == "dlq" and value == b"not json"
    reason = dict(headers)["dlq.reason"].decode()
    assert reason.startswith("undecodable:")
    assert dict(headers)["dlq.offset"] == b"0"
    assert consumer.committed == [{TP: 2}]


@pytest.mark.parametrize(
    ("failures", "backoff_max_s"),
    [
        (3, None),  # beyond max_attempts: transient, never dead-lettered
        # ~8.5 h of a database outage at the default 30 s backoff: the delay's float overflowed.
        (1100, 0.0),
    ],
)
async def test_transient_errors_are_retried_until_they_pass(failures: int, backoff_max_s: float | None):
    consumer, producer = FakeConsumer([good(1)]), FakeProducer()
    attempts = 0

    async def handler(events):
        nonlocal attempts
        attempts += 1
        if attempts <= failures:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))

    options = {} if backoff_max_s is None else {"backoff_max_s": backoff_max_s}
    loop = make_loop(consumer, producer, handler, max_attempts=2, **options)
    await run_until(loop, lambda: consumer.committed, timeout=10)
    assert attempts == failures + 1
    assert producer.sent == []
    assert consumer.committed == [{TP: 1}]


async def test_lag_grows_while_a_batch_is_retried_and_includes_the_batch():
    consumer, producer = FakeConsumer([good(1), good(2)]), FakeProducer()
    consumer.end = 2 + 300  # 300 more arrive while the database is down

    async def handler(events):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))

    loop = make_loop(consumer, producer, handler)
    # Between batches lag reads the fetches' high watermark, frozen while the batch is retried:
    # a database outage showed lag 0 and no lag alert could fire.
    await run_until(loop, lambda: loop.total_lag() == 302)
    assert consumer.committed == []


async def test_a_message_that_keeps_failing_is_isolated_and_dead_lettered_the_rest_goes_through():
    consumer, producer = FakeConsumer([good(1), good(2), good(3)]), FakeProducer()
    done: list[str] = []

    async def handler(events):
        if any(e.envelope.ticket_key == "api:2" for e in events):
            raise RuntimeError("bug triggered by ticket 2")
        done.extend(e.envelope.ticket_key for e in events)

    await run_until(make_loop(consumer, producer, handler, max_attempts=2), lambda: consumer.committed)
    assert done == ["api:1", "api:3"]
    assert len(producer.sent) == 1
    reason = dict(producer.sent[0][2])["dlq.reason"].decode()
    assert "handler failed 2 times" in reason and "bug triggered by ticket 2" in reason
    assert consumer.committed == [{TP: 3}]


async def test_a_batch_failing_on_one_message_is_split_at_once_not_retried_whole():
    consumer, producer = FakeConsumer([good(n) for n in range(1, 9)]), FakeProducer()
    calls: list[list[int]] = []
    done: list[int] = []

    async def handler(events):
        numbers = [int(e.envelope.ticket_key.removeprefix("api:")) for e in events]
        calls.append(numbers)
        if 5 in numbers:
            raise RuntimeError("bug triggered by ticket 5")
        done.extend(numbers)

    await run_until(make_loop(consumer, producer, handler, max_attempts=3), lambda: consumer.committed)
    # Each batch holding the bad message is tried once, then halved; alone it gets its attempts.
    assert calls == [
        [1, 2, 3, 4, 5, 6, 7, 8],
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        [5, 6],
        [5],
        [5],
        [5],
        [6],
        [7, 8],
    ]
    assert done == [1, 2, 3, 4, 6, 7, 8]  # in order, the bad one left out
    assert [json.loads(value)["ticket_key"] for _, value, _ in producer.sent] == ["api:5"]
    assert "handler failed 3 times" in dict(producer.sent[0][2])["dlq.reason"].decode()
    assert consumer.committed == [{TP: 8}]


async def test_a_poison_message_in_a_batch_is_found_by_halving_and_dead_lettered_alone():
    consumer, producer = FakeConsumer([good(n) for n in range(1, 5)]), FakeProducer()
    calls: list[int] = []

    async def handler(events):
        calls.append(len(events))
        if any(e.envelope.ticket_key == "api:1" for e in events):
            raise PoisonMessage("unknown source")

    await run_until(make_loop(consumer, producer, handler), lambda: consumer.committed)
    assert calls == [4, 2, 1, 1, 2]
    assert [json.loads(value)["ticket_key"] for _, value, _ in producer.sent] == ["api:1"]
    assert consumer.committed == [{TP: 4}]


async def test_a_stop_while_a_batch_is_halved_drops_it_without_more_handler_calls():
    consumer, producer = FakeConsumer([good(n) for n in range(1, 9)]), FakeProducer()
    calls: list[int] = []
    loop: ConsumerLoop | None = None

    async def handler(events):
        calls.append(len(events))
        assert loop is not None
        loop.stop()  # SIGTERM while the batch is in the handler
        if any(e.envelope.ticket_key == "api:8" for e in events):
            raise RuntimeError("bug triggered by ticket 8")

    loop = make_loop(consumer, producer, handler, max_attempts=3)
    await asyncio.wait_for(loop.run(), 3)
    assert calls == [8]  # not halved down to the bad one: dropped, to be delivered again
    assert consumer.committed == [] and producer.sent == []


async def test_an_outage_before_a_failure_does_not_use_up_the_messages_attempts():
    consumer, producer = FakeConsumer([good(1)]), FakeProducer()
    calls = 0

    async def handler(events):
        nonlocal calls
        calls += 1
        if calls <= 4:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("db down"))
        if calls == 5:
            raise RuntimeError("duplicate key: a race the next try does not meet")

    await run_until(make_loop(consumer, producer, handler, max_attempts=2), lambda: consumer.committed)
    assert calls == 6 and producer.sent == []  # 1 failure of its own out of 2: tried again, passed
    assert consumer.committed == [{TP: 1}]


async def test_poison_message_raised_by_the_handler_is_dead_lettered_once():
    consumer, producer = FakeConsumer([good(1)]), FakeProducer()
    calls = 0

    async def handler(events):
        nonlocal calls
        calls += 1
        raise PoisonMessage("unknown source")

    await run_until(make_loop(consumer, producer, handler, max_attempts=3), lambda: consumer.committed)
    assert calls == 1  # a rejection is not tried again
    assert [(topic, json.loads(value)["ticket_key"]) for topic, value, _ in producer.sent] == [
        ("dlq", "api:1")
    ]
    assert dict(producer.sent[0][2])["dlq.reason"].decode() == "rejected: PoisonMessage: unknown source"
    assert consumer.committed == [{TP: 1}]


async def test_stop_during_retries_commits_nothing():
    consumer, producer = FakeConsumer([good(1)]), FakeProducer()
    calls = 0

    async def handler(events):
        nonlocal calls
        calls += 1
        raise OperationalError("x", {}, ConnectionRefusedError())

    loop = make_loop(consumer, producer, handler)
    task = asyncio.create_task(loop.run())
    while calls < 2:
        await asyncio.sleep(0.01)
    loop.stop()
    await asyncio.wait_for(task, 2)
    assert consumer.committed == []  # redelivered after restart, never lost


@pytest.mark.parametrize("batch_max", [1, 2, 100])
async def test_batches_respect_the_size_limit(batch_max):
    consumer, producer = FakeConsumer([good(i) for i in range(5)]), FakeProducer()
    sizes: list[int] = []

    async def handler(events):
        sizes.append(len(events))

    await run_until(
        make_loop(consumer, producer, handler, batch_max=batch_max),
        lambda: sum(sizes) == 5 and len(consumer.committed) == len(sizes),
    )
    assert max(sizes) <= batch_max
    assert consumer.committed[-1] == {TP: 5}


async def test_a_batch_fetched_before_a_rebalance_is_dropped_not_handled_or_committed():
    """A rebalance may seek the partition elsewhere (a checkpoint): the batch in hand is stale."""
    consumer, producer = FakeConsumer([good(1)]), FakeProducer()
    calls = 0

    async def handler(events):
        nonlocal calls
        calls += 1
        if calls == 1:
            await consumer.listener.on_partitions_assigned({TP})  # the rebalance lands mid-retry
            raise OperationalError("x", {}, ConnectionRefusedError())

    loop = make_loop(consumer, producer, handler)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.3)  # backoff_max_s is 0.02: without the guard the batch is retried and committed
    loop.stop()
    await asyncio.wait_for(task, 2)
    assert (calls, loop.assignment_epoch) == (1, 1)
    assert consumer.committed == []  # the new positions deliver the batch again


async def test_under_a_backlog_the_next_batch_is_announced_before_the_current_one_is_handled():
    consumer, producer = FakeConsumer([good(i) for i in range(5)]), FakeProducer()
    log: list[str] = []

    def keys(events: list[ConsumedEvent]) -> str:
        return ",".join(e.envelope.ticket_key.removeprefix("api:") for e in events)

    async def handler(events: list[ConsumedEvent]) -> None:
        log.append(f"handle {keys(events)}")

    def on_next_batch(events: list[ConsumedEvent]) -> None:
        log.append(f"next {keys(events)}")

    loop = make_loop(consumer, producer, handler, batch_max=2, on_next_batch=on_next_batch)
    await run_until(loop, lambda: consumer.committed and consumer.committed[-1] == {TP: 5})
    # Full batches look ahead; the last, short one does not (below saturation it would only split
    # what arrives meanwhile). Every batch is handled once, in order, and committed in order.
    assert log == ["next 2,3", "handle 0,1", "next 4", "handle 2,3", "handle 4"]
    assert consumer.committed == [{TP: 2}, {TP: 4}, {TP: 5}]


async def test_below_a_full_batch_there_is_no_look_ahead():
    consumer, producer = FakeConsumer([good(1), good(2)]), FakeProducer()
    announced: list[list[ConsumedEvent]] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        pass

    loop = make_loop(consumer, producer, handler, batch_max=3, on_next_batch=announced.append)
    await run_until(loop, lambda: consumer.committed)
    assert announced == []


@pytest.mark.parametrize("decoded_in_waits", [False, True])
async def test_a_next_batch_fetched_before_a_rebalance_is_dropped_with_the_current_one(
    decoded_in_waits: bool,
):
    consumer, producer = FakeConsumer([good(i) for i in range(4)]), FakeProducer()
    handled: list[int] = []
    idle = IdleWork() if decoded_in_waits else None
    announced: list[int] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.append(len(events))
        while idle:  # the next batch decoded (and announced) in this batch's waits
            idle.run_one()
        await consumer.listener.on_partitions_assigned({TP})  # lands while the batch is handled

    loop = make_loop(
        consumer,
        producer,
        handler,
        batch_max=2,
        on_next_batch=lambda events: announced.append(len(events)),
        idle=idle,
    )
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.2)
    loop.stop()
    await asyncio.wait_for(task, 2)
    # The first batch was handled (its effects are idempotent) and committed; the one fetched
    # ahead of it, under the old assignment, was neither, though announced: the new positions
    # deliver it again.
    assert handled == [2] and consumer.committed == [{TP: 2}] and announced == [2]


async def test_a_next_batch_fetched_after_a_rebalance_is_handled_though_the_current_one_is_dropped():
    """The rebalance completes while the look-ahead fetches: the current batch is stale, the next
    one was fetched from the new positions (the committed offsets) and must not be dropped with
    it, or its records would be skipped."""
    consumer, producer = FakeConsumer([good(i) for i in range(4)]), FakeProducer()
    handled: list[list[int]] = []
    original = consumer.getmany
    fetches = 0

    async def getmany(timeout_ms: int, max_records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
        nonlocal fetches
        fetches += 1
        if fetches == 2:  # the look-ahead: the assignment lands, positions back to the commit (0)
            await consumer.listener.on_partitions_assigned({TP})
            consumer.pending = [record(i, good(i)) for i in range(4)]
        return await original(timeout_ms, max_records)

    consumer.getmany = getmany  # type: ignore[method-assign]

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.append([e.offset for e in events])

    loop = make_loop(consumer, producer, handler, batch_max=2, on_next_batch=lambda events: None)
    await run_until(loop, lambda: consumer.committed and consumer.committed[-1] == {TP: 4})
    assert handled == [[0, 1], [2, 3]]  # the stale first fetch was dropped, nothing skipped
    assert consumer.committed == [{TP: 2}, {TP: 4}]


async def test_with_an_idle_queue_the_next_batch_is_decoded_in_the_current_ones_waits():
    """The next batch's decoding is queued as idle work: the handler runs it in its waits, the
    batch is announced from there once decoded, then handled and committed as ever."""
    values = [good(i) for i in range(4)] + [b"not json"] + [good(i) for i in range(5, 8)]
    consumer, producer = FakeConsumer(values), FakeProducer()
    idle = IdleWork()
    log: list[str] = []

    def keys(events: list[ConsumedEvent]) -> str:
        return ",".join(e.envelope.ticket_key.removeprefix("api:") for e in events)

    async def handler(events: list[ConsumedEvent]) -> None:
        log.append(f"handle {keys(events)} (queued {len(idle)})")
        while idle:  # the batch's waits: everything queued gets done
            idle.run_one()

    def on_next_batch(events: list[ConsumedEvent]) -> None:
        log.append(f"next {keys(events)}")

    loop = make_loop(consumer, producer, handler, batch_max=4, on_next_batch=on_next_batch, idle=idle)
    await run_until(loop, lambda: consumer.committed and consumer.committed[-1] == {TP: 8})
    # Two steps each (one slice of decoding, then the announcement); the last batch, short, has
    # no look-ahead. The undecodable record, decoded in a wait, is dead-lettered in its turn.
    assert log == ["handle 0,1,2,3 (queued 2)", "next 5,6,7", "handle 5,6,7 (queued 0)"]
    assert consumer.committed == [{TP: 4}, {TP: 8}]
    assert [topic for topic, _, _ in producer.sent] == ["dlq"]


async def test_a_next_batch_the_waits_did_not_decode_is_decoded_in_its_turn_unannounced():
    consumer, producer = FakeConsumer([good(i) for i in range(6)]), FakeProducer()
    idle = IdleWork()
    handled: list[list[int]] = []
    announced: list[list[ConsumedEvent]] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.append([e.offset for e in events])  # no waits: no idle work done

    loop = make_loop(consumer, producer, handler, batch_max=3, on_next_batch=announced.append, idle=idle)
    await run_until(loop, lambda: consumer.committed and consumer.committed[-1] == {TP: 6})
    assert handled == [[0, 1, 2], [3, 4, 5]] and announced == []
    assert consumer.committed == [{TP: 3}, {TP: 6}]


def test_a_batch_decodes_in_slices_in_fetch_order_and_counts_its_time():
    values = [good(i) for i in range(DECODE_SLICE + 2)]
    other = TopicPartition("tickets", 1)
    batch = FetchedBatch(
        {TP: [record(i, v) for i, v in enumerate(values)], other: [record(0, b"{")]}, epoch=1
    )
    done: list[bool] = []
    steps = batch.decode_steps(then=lambda: done.append(batch.decoded))
    assert len(steps) == 3  # two slices for the 131 records, then the announcement
    steps[0]()
    assert len(batch.events) == DECODE_SLICE and not batch.decoded and batch.decode_s > 0
    for step in steps[1:]:
        step()
    assert done == [True]
    assert [e.offset for e in batch.events] == list(range(DECODE_SLICE + 2))
    assert [(m.partition, why.split(":")[0]) for m, why in batch.undecodable] == [(0, "undecodable")]
    batch.decode()  # nothing left: a no-op
    assert len(batch.events) == DECODE_SLICE + 2 and batch.size == DECODE_SLICE + 3


class FlakyProducer(FakeProducer):
    """Refuses the first ``failures`` sends, as a broker that is away for a moment."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def send_and_wait(self, topic, value, key=None, headers=None):
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker unreachable for a moment")
        await super().send_and_wait(topic, value, key, headers)


async def test_a_failed_dead_letter_send_is_retried_and_nothing_is_committed_before_it():
    consumer, producer = FakeConsumer([b"not json", good(1)]), FlakyProducer(failures=2)
    handled: list[str] = []

    async def handler(events):
        assert producer.sent, "the poison message went to the dead-letter topic first"
        handled.extend(e.envelope.ticket_key for e in events)

    await run_until(make_loop(consumer, producer, handler), lambda: consumer.committed)
    assert [value for _, value, _ in producer.sent] == [b"not json"]
    assert handled == ["api:1"] and consumer.committed == [{TP: 2}]


async def test_stop_while_the_dead_letter_topic_is_unreachable_commits_nothing():
    consumer, producer = FakeConsumer([b"not json"]), FlakyProducer(failures=10**6)
    loop = make_loop(consumer, producer, lambda events: asyncio.sleep(0))
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.1)
    loop.stop()
    await asyncio.wait_for(task, 2)
    assert producer.sent == [] and consumer.committed == []  # read again after the restart


async def test_a_dead_lettered_event_keeps_the_bytes_key_and_headers_it_was_consumed_with():
    # Not our canonical encoding (indented, no produced_at): the dead-letter record must be the
    # record as consumed, not the envelope encoded anew.
    consumed = json.dumps({k: v for k, v in json.loads(good(7)).items() if k != "produced_at"}, indent=1)
    message = dataclasses.replace(
        record(0, consumed.encode()), key=b"vendor-key", headers=[("trace", b"t-1")]
    )
    consumer, producer = FakeConsumer([]), FakeProducer()
    consumer.pending = [message]

    async def handler(events):
        raise PoisonMessage("unknown source")

    await run_until(make_loop(consumer, producer, handler), lambda: consumer.committed)
    sent = producer.dead_lettered[0]
    assert (sent.value, sent.key) == (consumed.encode(), b"vendor-key")
    assert sent.headers[0] == ("trace", b"t-1") and dict(sent.headers)["dlq.offset"] == b"0"


async def test_a_record_without_a_value_is_dead_lettered_without_one():
    # A tombstone (a key and no value) is undecodable; its copy had an empty value instead (README:
    # "as they were consumed (same value, key and headers)").
    consumer, producer = FakeConsumer([]), FakeProducer()
    consumer.pending = [record(0, None), record(1, good(1))]
    handled: list[str] = []

    async def handler(events):
        handled.extend(e.envelope.ticket_key for e in events)

    await run_until(make_loop(consumer, producer, handler), lambda: consumer.committed)
    sent = producer.dead_lettered[0]
    assert (sent.value, sent.key) == (None, b"k")
    assert dict(sent.headers)["dlq.reason"].startswith(b"undecodable:")
    assert handled == ["api:1"] and consumer.committed == [{TP: 2}]


class SizeLimitedProducer(FakeProducer):
    """Refuses what is over ``limit`` bytes, as the producer does over ``max_request_size``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    async def send_and_wait(self, topic, value, key=None, headers=None):
        if len(value) + sum(len(name) + len(data) for name, data in headers or ()) > self.limit:
            raise MessageSizeTooLargeError("the message is too large")
        await super().send_and_wait(topic, value, key, headers)


async def test_a_poison_message_too_large_to_copy_is_dead_lettered_without_its_value():
    # It fit the broker's limit; its copy, with the dlq.* headers, does not: resent as is, forever,
    # the partition would stall behind it.
    big = b"x" * 1000
    consumer, producer = FakeConsumer([big, good(1)]), SizeLimitedProducer(limit=1100)
    handled: list[str] = []

    async def handler(events):
        handled.extend(e.envelope.ticket_key for e in events)

    await run_until(make_loop(consumer, producer, handler), lambda: consumer.committed)
    sent = producer.dead_lettered[0]
    headers = dict(sent.headers)
    assert sent.value == b"" and headers["dlq.value_dropped"] == b"1000"
    assert headers["dlq.offset"] == b"0" and headers["dlq.reason"]
    assert handled == ["api:1"] and consumer.committed == [{TP: 2}]


class ShrinkingConsumer(FakeConsumer):
    """Loses the partition to another member while the batch is handled (aiokafka rebalances in
    the background), and refuses commits of partitions it does not own, as aiokafka does."""

    def __init__(self, values: list[bytes]) -> None:
        super().__init__(values)
        self.owned = {TP}

    def assignment(self):
        return set(self.owned)

    async def commit(self, offsets):
        if set(offsets) - self.owned:
            raise IllegalStateError(f"Partition {set(offsets) - self.owned} is not assigned")
        await super().commit(offsets)


async def test_a_partition_taken_away_during_its_batch_is_not_committed_and_the_loop_goes_on():
    consumer, producer = ShrinkingConsumer([good(1), good(2)]), FakeProducer()
    handled: list[str] = []

    async def handler(events):
        handled.extend(e.envelope.ticket_key for e in events)
        # Taken away during the first batch (its new owner reads it again from the last commit),
        # given back by the second.
        consumer.owned = set() if len(handled) == 1 else {TP}

    await run_until(make_loop(consumer, producer, handler, batch_max=1), lambda: consumer.committed)
    assert handled == ["api:1", "api:2"] and consumer.committed == [{TP: 2}]


class SeekingConsumer(FakeConsumer):
    """A log with a position: the assignment lands while a fetch from the committed offset (3) is
    under way, and ``on_assign`` seeks back to a checkpoint (0)."""

    def __init__(self, values: list[bytes], committed: int) -> None:
        super().__init__(values)
        self.log, self.position_, self.fetches = list(self.pending), committed, 0

    async def getmany(self, timeout_ms: int, max_records: int):
        self.fetches += 1
        if self.fetches == 1:
            asyncio.get_running_loop().create_task(self.listener.on_partitions_assigned({TP}))
            await asyncio.sleep(0.01)
        batch = self.log[self.position_ :][:max_records]
        self.position_ += len(batch)
        if not batch:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        return {TP: batch}

    def seek(self, tp, offset):
        self.position_ = offset


async def test_a_batch_fetched_before_on_assign_seeks_its_partition_is_dropped_and_read_again():
    consumer, producer = (
        SeekingConsumer([b"not json", *(good(i) for i in range(1, 5))], committed=3),
        FlakyProducer(0),
    )
    handled: list[int] = []

    async def on_assign(tps):
        await asyncio.sleep(0.05)  # reading a checkpoint
        return {TP: 1}

    async def handler(events):
        handled.extend(e.offset for e in events)

    loop = make_loop(consumer, producer, handler, on_assign=on_assign)
    await run_until(loop, lambda: handled[-1:] == [4])
    assert handled == [1, 2, 3, 4]  # not 3, 4 first: that would skip past the checkpoint's replay


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("53300", True),
        ("57P03", True),
        ("08006", True),
        ("40P01", True),
        ("23505", False),
        ("22P02", False),
        ("57014", False),  # a statement timeout: the statement's failure, dead-lettered in the end
    ],
)
def test_database_errors_are_transient_by_their_sqlstate(sqlstate: str, transient: bool) -> None:
    class ServerError(Exception):
        def __init__(self) -> None:
            super().__init__("server said no")
            self.sqlstate = sqlstate

    assert is_transient(DBAPIError("SELECT 1", {}, ServerError())) is transient


def test_a_pool_with_no_free_connection_is_transient() -> None:
    # SQLAlchemy's "QueuePool limit ... reached, connection timed out": the database is slow or
    # busy, not the message bad; dead-lettering would lose good tickets.
    assert is_transient(sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"))


async def test_with_an_interval_offsets_are_committed_at_most_that_often_and_when_idle():
    consumer, producer = FakeConsumer([good(i) for i in range(5)]), FakeProducer()
    handled: list[int] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        handled.append(len(events))

    loop = make_loop(consumer, producer, handler, batch_max=1, commit_interval_s=60.0)
    await run_until(loop, lambda: sum(handled) == 5 and consumer.committed[-1:] == [{TP: 5}])
    # The first batch at once; the next four not before the interval, but as soon as a poll
    # found nothing new.
    assert consumer.committed == [{TP: 1}, {TP: 5}]


async def test_with_an_interval_stopping_commits_what_was_handled():
    consumer, producer = FakeConsumer([good(i) for i in range(5)]), FakeProducer()
    loop: ConsumerLoop

    async def handler(events: list[ConsumedEvent]) -> None:
        if events[0].offset == 2:
            loop.stop()  # the third batch is the last one handled

    loop = make_loop(consumer, producer, handler, batch_max=1, commit_interval_s=60.0)
    await asyncio.wait_for(loop.run(), 2)
    assert consumer.committed == [{TP: 1}, {TP: 3}]


async def test_with_an_interval_a_revocation_commits_what_was_handled_first():
    consumer, producer = FakeConsumer([good(i) for i in range(4)]), FakeProducer()
    at_revocation: list[list[dict[TopicPartition, int]]] = []

    async def handler(events: list[ConsumedEvent]) -> None:
        if events[0].offset == 2:  # batches 0 and 1 handled, 1 not committed yet
            await consumer.listener.on_partitions_revoked({TP})
            at_revocation.append(list(consumer.committed))

    loop = make_loop(consumer, producer, handler, batch_max=1, commit_interval_s=60.0)
    await run_until(loop, lambda: consumer.committed[-1:] == [{TP: 4}])
    assert at_revocation == [[{TP: 1}, {TP: 2}]]  # the revoked partition's next owner starts at 2
    assert consumer.committed == [{TP: 1}, {TP: 2}, {TP: 4}]


class NewMember(FakeConsumer):
    """A replacement consumer: assigned at its first poll, nothing fetched yet (no high watermark)."""

    def __init__(self) -> None:
        super().__init__([])
        self.joined = False

    def highwater(self, tp):
        return None

    async def getmany(self, timeout_ms: int, max_records: int):
        if not self.joined:
            self.joined = True
            await self.listener.on_partitions_assigned({TP})
        await asyncio.sleep(timeout_ms / 1000)
        return {}


async def test_a_replaced_consumer_starts_with_no_lag_known():
    """The runner replaces a stuck consumer in the same loop. The old one's lag (0: caught up) must
    not stand for the new one's, which may be far behind (the metrics service restores its shards
    from a checkpoint at the assignment, and takes a lag of 0 as caught up)."""

    async def handler(events):
        pass

    loop = make_loop(FakeConsumer([good(1), good(2)]), FakeProducer(), handler)
    await run_until(loop, lambda: loop.lag.get(TP) == 0)
    loop.consumer = NewMember()
    loop._stopping.clear()
    task = asyncio.create_task(loop.run())
    try:
        await asyncio.sleep(0.1)
        assert loop.lag == {}
        labels = ("test", TP.topic, str(TP.partition))
        series = [
            tuple(sample.labels.values()) for family in CONSUMER_LAG.collect() for sample in family.samples
        ]
        assert labels not in series  # the old consumer's series gone with it
    finally:
        loop.stop()
        await task


class _ServerError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("canceling statement due to statement timeout")
        self.sqlstate = sqlstate


async def dead_letter_reason_of_api1_failing_with(error: Exception) -> str:
    """api:1's batch fails with ``error`` every time, api:2 passes: api:2 alone is handled, api:1
    alone is dead-lettered (3 attempts); its dead letter's reason."""
    consumer, producer = FakeConsumer([good(1), good(2)]), FakeProducer()
    done: list[str] = []

    async def handler(events):
        if any(e.envelope.ticket_key == "api:1" for e in events):
            raise error
        done.extend(e.envelope.ticket_key for e in events)

    await run_until(make_loop(consumer, producer, handler, max_attempts=3), lambda: consumer.committed)
    assert done == ["api:2"]
    assert [json.loads(value)["ticket_key"] for _, value, _ in producer.sent] == ["api:1"]
    return dict(producer.sent[0][2])["dlq.reason"].decode()


@pytest.mark.parametrize(
    "error",
    [
        DBAPIError("SELECT ...", {}, _ServerError("57014")),
        OperationalError("SELECT ...", {}, sqlite3.OperationalError("no such column: tickets.nothing")),
        OperationalError("INSERT ...", {}, sqlite3.OperationalError("too many SQL variables")),
    ],
    ids=["statement-timeout", "sqlite-no-such-column", "sqlite-too-many-variables"],
)
async def test_a_message_whose_statement_always_fails_so_is_dead_lettered_with_the_reason(error: Exception):
    # Counted as transient, these were retried without limit: the partition stopped for good.
    reason = await dead_letter_reason_of_api1_failing_with(error)
    assert "handler failed 3 times" in reason and str(error.orig) in reason  # type: ignore[attr-defined]


async def test_sqlite_locked_is_retried_until_it_passes():
    consumer, producer = FakeConsumer([good(1)]), FakeProducer()
    attempts = 0

    async def handler(events):
        nonlocal attempts
        attempts += 1
        if attempts < 5:
            raise OperationalError("UPDATE ...", {}, sqlite3.OperationalError("database is locked"))

    await run_until(make_loop(consumer, producer, handler, max_attempts=2), lambda: consumer.committed)
    assert attempts == 5 and producer.sent == []  # beyond max_attempts, never dead-lettered


async def test_a_stop_after_a_dead_letter_commits_past_it_so_it_is_not_dead_lettered_again():
    # The batch is dropped (delivered again) when the stop comes during the backoff of a later
    # message; the message dead-lettered before it was not committed past, so after the restart it
    # went to the dead-letter topic a second time.
    consumer, producer = FakeConsumer([b"not json", good(1), good(2)]), FakeProducer()
    loop: ConsumerLoop

    async def handler(events):
        loop.stop()  # SIGTERM while the database is away
        raise OperationalError("x", {}, ConnectionRefusedError())

    loop = make_loop(consumer, producer, handler)
    await asyncio.wait_for(loop.run(), 2)
    assert [value for _, value, _ in producer.sent] == [b"not json"]
    assert consumer.committed == [{TP: 1}]  # past the dead letter, not past the events unhandled


async def test_a_stop_while_a_batch_is_halved_commits_what_went_through_before_the_message_at_fault():
    consumer, producer = FakeConsumer([good(n) for n in range(1, 9)]), FakeProducer()
    loop: ConsumerLoop
    done: list[int] = []

    async def handler(events):
        numbers = [int(e.envelope.ticket_key.removeprefix("api:")) for e in events]
        if numbers == [6]:
            loop.stop()  # SIGTERM while the second bad message is isolated
        if 3 in numbers or 6 in numbers:
            raise RuntimeError("bug triggered by tickets 3 and 6")
        done.extend(numbers)

    loop = make_loop(consumer, producer, handler, max_attempts=2)
    await asyncio.wait_for(loop.run(), 3)
    assert done == [1, 2, 4, 5]
    assert [json.loads(value)["ticket_key"] for _, value, _ in producer.sent] == ["api:3"]
    # Offsets 0-4 (tickets 1-5) handled or dead-lettered: the restart starts at ticket 6, and
    # neither hands ticket 3 to the dead-letter topic again nor handles 1-5 again.
    assert consumer.committed == [{TP: 5}]


async def test_a_revocation_while_a_batch_is_halved_commits_what_went_through_first():
    consumer, producer = FakeConsumer([good(n) for n in range(1, 9)]), FakeProducer()
    at_revocation: list[list[dict[TopicPartition, int]]] = []

    async def handler(events):
        numbers = [int(e.envelope.ticket_key.removeprefix("api:")) for e in events]
        if numbers == [6] and not at_revocation:  # the partition moves while 6 is isolated
            await consumer.listener.on_partitions_revoked({TP})
            at_revocation.append(list(consumer.committed))
            await consumer.listener.on_partitions_assigned({TP})
        if 3 in numbers or 6 in numbers:
            raise RuntimeError("bug triggered by tickets 3 and 6")

    loop = make_loop(consumer, producer, handler, max_attempts=2)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.3)
    loop.stop()
    await asyncio.wait_for(task, 2)
    # Its next owner starts at ticket 6: ticket 3 is not dead-lettered a second time.
    assert at_revocation == [[{TP: 5}]]
    assert [json.loads(value)["ticket_key"] for _, value, _ in producer.sent] == ["api:3"]


async def test_a_batch_whose_partition_moved_away_while_handled_is_not_committed_when_it_comes_back():
    # aiokafka rebalances beside the loop. Handled while its partition went to another member
    # (which read on and committed past it) and came back, the batch's offset was committed once it
    # returned: the group's commit moved back, and everything between was delivered again.
    consumer, producer = FakeConsumer([good(1), good(2)]), FakeProducer()
    moved = False

    async def handler(events):
        nonlocal moved
        if not moved:
            moved = True
            await consumer.listener.on_partitions_revoked({TP})
            await consumer.listener.on_partitions_assigned(set())
            consumer.committed.append({TP: 7})  # the other member's commit
            await consumer.listener.on_partitions_revoked(set())
            await consumer.listener.on_partitions_assigned({TP})

    loop = make_loop(consumer, producer, handler)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.2)
    loop.stop()
    await asyncio.wait_for(task, 2)
    assert consumer.committed == [{TP: 7}]  # read again from there after the assignment


async def test_lag_counts_the_batch_taken_ahead_as_not_done():
    # Under a backlog the next batch is fetched before the current one is handled: the consumer's
    # position is past it, and the lag measured from the position left it out (0 while the last
    # batch of a backlog was still to be handled).
    consumer, producer = FakeConsumer([good(i) for i in range(10)]), FakeProducer()
    lag_seen: list[int | None] = []
    loop: ConsumerLoop

    async def handler(events: list[ConsumedEvent]) -> None:
        lag_seen.append(loop.lag.get(TP))  # as measured after the previous batch

    loop = make_loop(consumer, producer, handler, batch_max=2, on_next_batch=lambda events: None)
    await run_until(loop, lambda: consumer.committed and consumer.committed[-1] == {TP: 10})
    assert lag_seen == [None, 8, 6, 4, 2]  # the messages after each batch handled
    assert loop.lag[TP] == 0


class LosesAPartitionWhileLagIsRead(FakeConsumer):
    """Assigned two partitions; a rebalance takes one away while the lag update waits for the
    other's position (one being reset after an assignment), so the one taken away is always the
    one the update reads next. aiokafka's ``highwater`` asserts."""

    def __init__(self, values: list[bytes]) -> None:
        super().__init__(values)
        self.assigned = {TP, TP2}
        self.take_away = False

    def assignment(self):
        return set(self.assigned)

    def highwater(self, tp):
        assert tp in self.assigned, "Partition is not assigned"
        return 10

    async def position(self, tp):
        if self.take_away:
            self.take_away = False
            (other,) = self.assigned - {tp}
            await self.listener.on_partitions_revoked({other})
            self.assigned.discard(other)
            await asyncio.sleep(0)
        return await super().position(tp)


TP2 = TopicPartition("tickets", 1)


async def test_a_partition_taken_away_while_the_lag_is_read_does_not_kill_the_loop():
    consumer = LosesAPartitionWhileLagIsRead([good(1), good(2)])
    handled: list[int] = []

    async def handler(events):
        handled.extend(e.offset for e in events)
        consumer.take_away = len(handled) == 1  # in the lag update after the first batch

    loop = make_loop(consumer, FakeProducer(), handler, batch_max=1)
    await run_until(loop, lambda: handled == [0, 1])  # the loop went on (a crash is raised here)
    assert len(consumer.assigned) == 1 and set(loop.lag) <= consumer.assigned


async def test_a_revoked_partitions_lag_is_not_set_again_while_its_batch_is_retried():
    # aiokafka keeps the old assignment until the new one comes: the retries' lag update set the
    # revoked partition's lag (and series) again, which on_partitions_revoked had just dropped.
    consumer, producer = FakeConsumer([good(1)]), FakeProducer()
    calls = 0
    lag_after_revocation: list[int | None] = []
    loop: ConsumerLoop

    async def handler(events):
        nonlocal calls
        calls += 1
        if calls == 1:
            await consumer.listener.on_partitions_revoked({TP})  # the rebalance takes seconds
        else:
            lag_after_revocation.append(loop.lag.get(TP))
        raise OperationalError("x", {}, ConnectionRefusedError("db down"))

    loop = make_loop(consumer, producer, handler)
    await run_until(loop, lambda: calls >= 3)
    assert lag_after_revocation[:2] == [None, None]


class RefusingConsumer(FakeConsumer):
    """Refuses its first ``refusals`` commits with ``error``, as the group coordinator's answer."""

    def __init__(self, values: list[bytes], error: Exception, refusals: int = 1) -> None:
        super().__init__(values)
        self.error, self.refusals, self.attempts = error, refusals, 0

    async def commit(self, offsets):
        self.attempts += 1
        if self.attempts <= self.refusals:
            raise self.error
        await super().commit(offsets)


@pytest.mark.parametrize(
    "error",
    [
        GroupAuthorizationFailedError("test"),
        TopicAuthorizationFailedError({"tickets"}),
        UnknownError(),
        KafkaTimeoutError(),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_failed_commit_keeps_the_handled_offsets_for_the_next_one_and_the_loop_goes_on(
    error: Exception,
):
    # It killed the loop: the watchdog replaced the consumer (a rebalance of the whole group) and
    # the batch, handled, was delivered again.
    consumer, producer = RefusingConsumer([good(1), good(2)], error), FakeProducer()
    handled: list[str] = []

    async def handler(events):
        handled.extend(e.envelope.ticket_key for e in events)

    await run_until(make_loop(consumer, producer, handler), lambda: consumer.committed)
    assert handled == ["api:1", "api:2"]  # once: no redelivery
    assert consumer.attempts == 2 and consumer.committed == [{TP: 2}]  # at the next (idle) poll


async def test_a_commit_refused_as_the_group_moved_on_is_not_retried():
    # The partition may be another member's now: its offsets are dropped (it is read again from
    # the group's commit), never committed later over what that member committed.
    consumer, producer = RefusingConsumer([good(1)], CommitFailedError()), FakeProducer()

    async def handler(events):
        pass

    loop = make_loop(consumer, producer, handler)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.2)  # the batch, its refused commit, idle polls (each a commit opportunity)
    loop.stop()
    await task
    assert consumer.attempts == 1 and consumer.committed == []


class RevokedWhileCommitting(RefusingConsumer):
    """The partition is revoked (beside the loop) while the commit is in flight, which then fails."""

    async def commit(self, offsets):
        if self.attempts == 0:
            await self.listener.on_partitions_revoked({TP})
        await super().commit(offsets)


async def test_a_failed_commit_revoked_meanwhile_is_not_kept_for_later():
    # Kept, the offsets would be committed once the partition is back, maybe behind what another
    # member committed meanwhile: the revocation's own commit was the last chance.
    consumer, producer = RevokedWhileCommitting([good(1)], UnknownError()), FakeProducer()

    async def handler(events):
        pass

    loop = make_loop(consumer, producer, handler)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.2)
    loop.stop()
    await task
    assert consumer.attempts == 1 and consumer.committed == []


@pytest.mark.parametrize(
    "error",
    [
        MessageSizeTooLargeError(),
        RecordTooLargeError("the record is 2000000 bytes"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_message_whose_produce_the_broker_always_refuses_is_dead_lettered_with_the_reason(
    error: Exception,
):
    # Counted as transient as every Kafka error was, these were retried without limit: the
    # partition stopped for good behind a message that can never be produced.
    reason = await dead_letter_reason_of_api1_failing_with(error)
    assert "handler failed 3 times" in reason and type(error).__name__ in reason


@pytest.mark.parametrize(
    "error",
    [
        KafkaConnectionError("broker unreachable"),
        NotLeaderForPartitionError(),
        RequestTimedOutError(),
        KafkaTimeoutError(),  # aiokafka's own timeout (a send not acknowledged in time): not flagged
        NoBrokersAvailable(),
        ProducerClosed(),  # shutting down: the message is not at fault
        # The cluster's refusals, the same for every message: held until fixed, not dead-lettered
        # message after message.
        InvalidTopicError(),
        TopicAuthorizationFailedError({"routing"}),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_broker_away_or_refusing_every_message_is_retried_beyond_the_attempts(error: Exception):
    consumer, producer = FakeConsumer([good(1)]), FakeProducer()
    attempts = 0

    async def handler(events):
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise error

    await run_until(make_loop(consumer, producer, handler, max_attempts=2), lambda: consumer.committed)
    assert attempts == 4 and producer.sent == [] and consumer.committed == [{TP: 1}]
