"""The one consumer loop used by router and metrics.

It owns polling, decoding, the dead-letter topic, retries, commits and shutdown; the business
logic is a plain ``async`` batch handler. The contract with the handler:

* the handler receives decoded, validated events and returns only once their effects are
  durable (database committed, produced messages acknowledged);
* it must be idempotent by event id: after a crash between its effects and our commit, the
  same events are delivered again;
* only after the handler returned do we commit the offsets past the batch (at-least-once).

Poison messages (not JSON, not a valid envelope, an unknown schema version) go to the
dead-letter topic with the reason, and are committed past. Handler errors are retried with
exponential backoff: transient ones (database or broker unreachable) forever, others up to
``max_attempts`` per message, after which that single message is dead-lettered with the error.
A batch of several that fails with a non-transient error is split in halves at once rather than
retried whole, so one bad message holds the others back for a few handler calls, not for its
whole backoff. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import (
    CommitFailedError,
    CorruptRecordException,
    IllegalGenerationError,
    IllegalStateError,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RebalanceInProgressError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnknownMemberIdError,
)
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter, Gauge, Histogram

from shared.cancellation import wait_event
from shared.db.errors import is_transient_database_error
from shared.kafka.commit_failures import CommitFailureLog
from shared.kafka.continuity import OffsetContinuity
from shared.kafka.fetched import ConsumedEvent, FetchedBatch, short_error
from shared.kafka.throttle import FetchThrottle
from shared.overlap import IdleWork

log = logging.getLogger(__name__)

LEARN_RETRY_S = 5.0  # after a position that could not be learned within a poll

CONSUMER_LAG = Gauge(
    "consumer_lag_messages", "Messages behind the partition end", ["group", "topic", "partition"]
)
BATCH_SECONDS = Histogram(
    "consumer_batch_seconds",
    "Time to process one batch, effects made durable",
    ["group"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MESSAGES = Counter("consumer_messages_total", "Messages consumed, by outcome", ["group", "outcome"])
DEAD_LETTERS = Counter("dead_letters_total", "Messages sent to the dead-letter topic", ["group", "reason"])
HANDLER_FAILURES = Counter("consumer_handler_failures_total", "Failed batch attempts", ["group", "kind"])
DEAD_LETTER_KINDS = ("undecodable", "rejected", "handler_error")
# A commit refused because the partitions may be another member's now (aiokafka wraps the group
# errors in CommitFailedError; IllegalStateError: not assigned). Never retried later: it could
# move the group's commit back behind the new owner's.
NOT_OURS_ANYMORE = (
    CommitFailedError,
    IllegalStateError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)


BatchHandler = Callable[[list[ConsumedEvent]], Awaitable[None]]
# Called with the next batch, fetched and decoded before the current one is handled, when there
# is a backlog (the current batch is full and more is buffered). The handler may queue CPU work
# for it, to be done while the current batch waits on I/O (shared/overlap.py ``IdleWork``); it
# must not act on it: the next batch may still be dropped (a rebalance, a stop) and fetched again.
# With the loop's ``idle`` queue the call comes from that queue, once the batch is decoded in the
# current batch's waits; a batch whose decoding the waits did not finish is not announced.
AheadHandler = Callable[[list[ConsumedEvent]], None]
# Called with newly assigned partitions; returns offsets to seek to (e.g. from a checkpoint).
AssignHandler = Callable[[set[TopicPartition]], Awaitable[dict[TopicPartition, int]]]
# Called with partitions about to move away. aiokafka calls it beside the loop: a batch may be in
# the handler meanwhile (it is handled to its end, not committed, and read again).
RevokeHandler = Callable[[set[TopicPartition]], Awaitable[None]]


class PoisonMessage(Exception):
    """A message that can never be processed; raised by handlers to dead-letter one event."""


# Kafka's refusals of one message, which come back for it every time: retried without limit, such
# a message held its partition for good. Every other Kafka error is the cluster's (a broker or
# leader away, a timeout, no authorization on a topic, a topic misnamed in the settings): the same
# for every message, so it holds the partition (lag and logs show it) until fixed, rather than
# dead-lettering every message in turn.
_MESSAGE_REFUSALS = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
)


def is_transient(exc: BaseException) -> bool:
    """Errors that a retry can cure, or that are not the message's: infrastructure down or
    misconfigured rather than a bad message. Kafka's refusals of the message itself (too large,
    corrupt, a timestamp out of range) count against its attempts instead."""
    if isinstance(exc, KafkaError):
        return not isinstance(exc, _MESSAGE_REFUSALS)
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return True
    return is_transient_database_error(exc)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, loop: ConsumerLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self.loop.revocations += 1
        if self.loop.rebalance_started is None:
            self.loop.rebalance_started = time.monotonic()
        # What was handled of them is committed now, while they are still ours: their next owner
        # starts there instead of handling it again (if this fails, it does: a redelivery).
        try:
            await self.loop.commit_handled(set(revoked))
        except Exception as exc:
            log.warning(
                "commit at revocation failed", extra={"group": self.loop.group_id, "error": short_error(exc)}
            )
        for tp in revoked:
            self.loop.drop_lag(tp)
        tps = set(revoked)
        if self.loop.on_revoke is not None and tps:
            await self.loop.on_revoke(tps)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        tps = set(assigned)
        self.loop.rebalance_started = None
        self.loop.assigned_once = True
        self.loop.assignment_epoch += 1
        self.loop.forget_positions()
        if self.loop.on_assign is None or not tps:
            return
        self.loop.assigning.clear()
        try:
            for tp, offset in (await self.loop.on_assign(tps)).items():
                self.loop.consumer.seek(tp, offset)
                self.loop.continuity.start_at(tp, offset)  # not what a batch dropped for it taught
                # A batch of tp fetched while ``on_assign`` ran (from the committed offset) must
                # not be handled now: it would move a restored state past its checkpoint.
                self.loop.seeks[tp] = self.loop.seeks.get(tp, 0) + 1
                # A lag the loop measured while ``on_assign`` ran is from the committed offset,
                # not from where it was sought: a 0 there would pass a restored shard as caught
                # up before its replay. Unknown until the next update.
                self.loop.drop_lag(tp)
        finally:
            self.loop.assigning.set()


class ConsumerLoop:
    def __init__(
        self,
        *,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        topics: list[str],
        group_id: str,
        handler: BatchHandler,
        dead_letter_topic: str,
        batch_max: int = 500,
        poll_timeout_ms: int = 200,
        backoff_max_s: float = 30.0,
        max_attempts: int = 8,
        on_assign: AssignHandler | None = None,
        pause_before_commit_s: float = 0.0,
        commit_interval_s: float = 0.0,
        on_revoke: RevokeHandler | None = None,
        on_next_batch: AheadHandler | None = None,
        idle: IdleWork | None = None,
        throttle: FetchThrottle | None = None,
        commit_failures: CommitFailureLog | None = None,
    ) -> None:
        """``idle``: the handler's queue of work for its waits (it runs it while its statements
        and acknowledgements are in flight); the next batch's decoding is queued there.

        ``throttle``: topics fetched at most every so often once caught up (shared/kafka/throttle.py).

        ``commit_interval_s``: handled offsets are committed at most this often (0: after every
        batch), as arroyo's commit policy and Kafka's auto-commit interval do. Committing later
        never commits anything unhandled; a crash replays at most that much more, which the
        handlers take as redeliveries. What is handled is committed when the loop stops, before
        its partitions are revoked, and whenever a poll finds nothing new.

        ``commit_failures``: counts and logs failed commits (a default one per loop)."""
        self.consumer = consumer
        self.producer = producer
        self.topics = topics
        self.group_id = group_id
        self.handler = handler
        self.dead_letter_topic = dead_letter_topic
        self.batch_max = batch_max
        self.poll_timeout_ms = poll_timeout_ms
        self.backoff_max_s = backoff_max_s
        self.max_attempts = max_attempts
        self.on_assign = on_assign
        self.on_revoke = on_revoke
        self.on_next_batch = on_next_batch
        self.idle = idle
        self.throttle = throttle if throttle is not None and throttle.enabled else None
        self.pause_before_commit_s = pause_before_commit_s
        self.commit_interval_s = commit_interval_s
        # Next offset per partition handled but not committed yet. None outlives a revocation
        # (committed or forgotten then), so none can move a partition's commit back after it was
        # away with another member.
        self._handled: dict[TopicPartition, int] = {}
        self._commit_after = 0.0  # monotonic time from which the handled offsets are due
        # A commit refused for good fails at every idle poll: logged at a bounded rate.
        self.commit_failures = commit_failures or CommitFailureLog(group_id)
        self.lag_labels: set[tuple[str, str, str]] = set()
        self.lag: dict[TopicPartition, int] = {}
        self.assigned_once = False
        # Bumped on every assignment: a batch fetched before it may come from positions that the
        # assignment has since moved (a seek to a checkpoint), so it is dropped, not handled.
        self.assignment_epoch = 0
        # Bumped on every revocation: a batch in hand at one is not marked handled (see _process).
        self.revocations = 0
        # Seeks per partition: a batch holding records of a partition sought since it was fetched
        # is dropped (the seek moved the position back: it is fetched again, in order).
        self.seeks: dict[TopicPartition, int] = {}
        # The next offset expected of each partition: a fetch that skips one is read again.
        self.continuity = OffsetContinuity(group_id)
        self.learn_after = 0.0  # monotonic time before which no position is asked again
        for kind in DEAD_LETTER_KINDS:  # from 0: an alert on increase() sees the first one
            DEAD_LETTERS.labels(group_id, kind)
        # Clear while ``on_assign`` runs (the rebalance runs beside the loop): a batch waits for it.
        self.assigning = asyncio.Event()
        self.assigning.set()
        # When the current rebalance (or the first join) began; None once partitions are assigned.
        self.rebalance_started: float | None = None
        self.in_batch = False
        # Inside the consumer's poll; during a rebalance aiokafka's waits for the assignment.
        self.polling = False
        self.last_poll_monotonic = 0.0
        self._stopping = asyncio.Event()

    def forget_positions(self) -> None:
        """A new assignment or consumer: positions come from commits and seeks again (learned
        anew, at once), and aiokafka's new partition states are not paused."""
        self.continuity.forget()
        if self.throttle is not None:
            self.throttle.forget()
        self.learn_after = 0.0

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit, and return."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def rebalancing_for(self) -> float:
        """Seconds since the current rebalance (or the first join) began; 0 when assigned."""
        started = self.rebalance_started
        return 0.0 if started is None else time.monotonic() - started

    async def run(self) -> None:
        self.rebalance_started = time.monotonic()  # joining the group
        self._handled.clear()  # a new membership (a replaced consumer): nothing of the old one
        self._forget_lag()  # the old consumer's says nothing of the new one's positions
        self.forget_positions()
        self.consumer.subscribe(self.topics, listener=_Rebalance(self))
        ahead: FetchedBatch | None = None
        while not self.stopping:
            batch, ahead = ahead, None
            if batch is None:
                batch = await self._fetch(self.poll_timeout_ms)
                if batch is None:  # nothing new: a good time to commit what is handled
                    await self.commit_handled()
            if batch is not None:
                if self.idle is not None:
                    self.idle.discard(batch)
                batch.decode()  # what the previous batch's waits left undecoded, if anything
                if self.on_next_batch is not None and batch.size >= self.batch_max:
                    # A backlog: take what is buffered now, so that the handler can work on the
                    # next batch while this one waits (only then: below saturation the next batch
                    # would be smaller than what arrives while this one is handled).
                    ahead = await self._fetch(0)
                    if ahead is not None:
                        self._look_ahead(ahead, self.on_next_batch)
                # Dropped when reassigned since fetched (so is the next batch if fetched before the
                # same rebalance: each is checked in its turn) or when stopping: delivered again.
                self.in_batch = True
                try:
                    await self._process(batch)
                finally:
                    self.in_batch = False
            await self._update_lag(ahead)
        await self.commit_handled()  # stopping: the batches handled are not delivered again

    def _look_ahead(self, ahead: FetchedBatch, announce: AheadHandler) -> None:
        """Announce the next batch: decoded now, or with an idle queue once decoded in the waits."""

        def announce_decoded() -> None:
            if ahead.events:
                announce(ahead.events)

        if self.idle is None:
            ahead.decode()
            announce_decoded()
        else:
            self.idle.replace(ahead, ahead.decode_steps(then=announce_decoded))

    async def _fetch(self, timeout_ms: int) -> FetchedBatch | None:
        """The next records, not decoded yet (see FetchedBatch.decode), up to the first offset
        the fetch skipped in each partition (see shared/kafka/continuity.py). The fetch ahead
        (``timeout_ms`` 0) is not taken while a position is still to be learned."""
        if not await self._learn_positions(timeout_ms) and timeout_ms == 0:
            return None
        if throttle := self.throttle:
            throttle.resume_due(self.consumer)
            timeout_ms = throttle.wait_ms(timeout_ms)
        self.polling = True
        try:
            records = await self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.batch_max)
        finally:
            self.polling = False
        self.last_poll_monotonic = time.monotonic()
        if not records:
            return None
        seek_marks = {tp: self.seeks.get(tp, 0) for tp in records}
        epoch, revocations = self.assignment_epoch, self.revocations
        if leading := self.continuity.leading_holes(records):
            await self._skip_deleted(leading)
            if self._moved_since(epoch, seek_marks):
                return None  # moved while asking (positions reset by it): dropped, fetched again
        holes = self.continuity.cut(records)
        if throttle:  # before any await: the fetcher's next request must leave them out
            throttle.after_fetch(self.consumer, records)  # (a partition cut at a hole is behind)
        if holes:
            for tp, offset in holes.items():
                # Forward of every record handed on: no batch in hand is affected (no seek mark).
                self.consumer.seek(tp, offset)
            if delay := self.continuity.retry_delay():
                await asyncio.sleep(delay)
            if not records:
                return None
        return FetchedBatch(records, epoch, seek_marks, revocations)

    async def _learn_positions(self, timeout_ms: int) -> bool:
        """Where the next fetch of each partition starts, for those not known since the last
        assignment, once ``on_assign`` has sought them (waited for a poll at most: the loop must
        still see a stop); True when every position is known. With ``timeout_ms`` 0 nothing is
        asked. A position not known within the poll (the broker away) is asked again after
        ``LEARN_RETRY_S`` or the next assignment; meanwhile that partition's next fetch is taken
        to start where its first record is."""
        unknown = [tp for tp in self.consumer.assignment() if not self.continuity.knows(tp)]
        if not unknown:
            return True
        if timeout_ms == 0 or time.monotonic() < self.learn_after:
            return False
        wait_s = timeout_ms / 1000
        if not await wait_event(self.assigning, wait_s):
            return False  # its batches are dropped until it has sought; waited for again next poll
        epoch = self.assignment_epoch
        try:
            for tp in self.consumer.assignment():
                if self.continuity.knows(tp):
                    continue
                position = await asyncio.wait_for(self.consumer.position(tp), wait_s)
                if epoch != self.assignment_epoch or self.stopping:
                    return False  # reassigned while asking: the new assignment's positions next
                self.continuity.start_at(tp, position)
        except TimeoutError:
            self.learn_after = time.monotonic() + LEARN_RETRY_S
            return False
        except KafkaError:  # IllegalStateError too: taken away while asking
            return False
        return True

    async def _skip_deleted(self, leading: dict[TopicPartition, int]) -> None:
        """Partitions whose fetch starts past the offset expected: where that offset lies below
        the log's start, retention deleted it (the consumer was reset to the start), not a hole."""
        try:  # within a poll: the loop must still see a stop
            wait_s = max(self.poll_timeout_ms, 100) / 1000
            starts = await asyncio.wait_for(self.consumer.beginning_offsets(list(leading)), wait_s)
        except (TimeoutError, KafkaError):  # unknown: taken as a hole, read again
            return
        for tp, log_start in starts.items():
            self.continuity.deleted_below(tp, log_start)

    async def _process(self, batch: FetchedBatch) -> None:
        """Handle one batch and mark its offsets handled (committed at the interval, see
        ``commit_handled``), unless it is dropped instead (stopping, or reassigned since it was
        fetched): then only what went through of it first is (see ``_went_through``), and the
        rest is delivered again."""
        started = time.perf_counter() - batch.decode_s  # the batch's time includes its decoding
        await self.assigning.wait()
        if self._stale(batch):
            return
        for message, reason in batch.undecodable:
            if not await self._dead_letter_until_sent(message, reason, "undecodable", batch):
                return
            self._went_through(batch, [(message.topic, message.partition, message.offset)])
        events = batch.events
        if events and not await self._handle_with_retry(events, batch):
            return
        if self.pause_before_commit_s:
            # Fault-injection window: effects are durable, the offsets are not committed yet.
            log.warning(
                "handled batch, pausing before commit", extra={"group": self.group_id, "size": len(events)}
            )
            await asyncio.sleep(self.pause_before_commit_s)
        # Revoked while it was handled (aiokafka rebalances beside the loop), its partitions may have
        # been another member's since, and back: marked now, the group's commit would move back
        # behind what that member committed. What was handled before is committed at revocation,
        # and the positions of a new assignment start from the group's commit: the batch comes again.
        if batch.revocations == self.revocations:
            for tp, messages in batch.records.items():
                self._handled[tp] = messages[-1].offset + 1
        if time.monotonic() >= self._commit_after:
            await self.commit_handled()
        BATCH_SECONDS.labels(self.group_id).observe(time.perf_counter() - started)
        MESSAGES.labels(self.group_id, "processed").inc(len(events))

    async def _handle_with_retry(
        self, events: list[ConsumedEvent], batch: FetchedBatch, *, whole: bool = True
    ) -> bool:
        """True once every event is handled or dead-lettered; False when asked to stop first or
        when a rebalance happened since the batch was fetched (it is fetched again). ``whole``:
        ``events`` are the batch's, marked handled by the caller; a part's are marked here."""
        attempt = failed = 0  # failed: the attempts that failed with a non-transient error
        while True:
            if self._stale(batch):
                return False
            try:
                await self.handler(events)
                if not whole:
                    self._went_through(batch, [(e.topic, e.partition, e.offset) for e in events])
                return True
            except PoisonMessage as exc:
                if len(events) == 1:
                    record, reason = events[0].as_record(), f"rejected: {short_error(exc)}"
                    return await self._dead_letter_event(record, reason, "rejected", batch)
                return await self._handle_halves(events, batch)
            except Exception as exc:
                attempt += 1
                transient = is_transient(exc)
                failed += not transient
                HANDLER_FAILURES.labels(self.group_id, "transient" if transient else "error").inc()
                split = not transient and len(events) > 1
                log.warning(
                    "batch failed, will retry its halves" if split else "batch failed, will retry",
                    extra={
                        "group": self.group_id,
                        "attempt": attempt,
                        "size": len(events),
                        "error": short_error(exc),
                        "transient": transient,
                    },
                    exc_info=not transient,
                )
                if split:
                    # Retried whole, the batch would hold every event in it (of every partition)
                    # behind the bad one for all its attempts, ~13 s of backoff at the defaults,
                    # twice over once isolated. The halves that pass go through at once; a race
                    # between routers (a non-transient constraint error) passes on the halves' try.
                    return await self._handle_halves(events, batch)
                # Only the message's own failures count: a database outage before it is no reason to
                # give up on it as soon as it is back (a race a retry cures, say).
                if not transient and failed >= self.max_attempts:
                    reason = f"handler failed {failed} times: {short_error(exc)}"
                    record = events[0].as_record()
                    return await self._dead_letter_event(record, reason, "handler_error", batch)
                await self._update_lag_behind(batch)
                if await self._backoff(attempt):
                    return False

    def _moved_since(self, epoch: int, seek_marks: dict[TopicPartition, int]) -> bool:
        """Reassigned since ``epoch``, or one of the partitions sought since its mark."""
        sought = any(self.seeks.get(tp, 0) != mark for tp, mark in seek_marks.items())
        return sought or epoch != self.assignment_epoch

    def _stale(self, batch: FetchedBatch) -> bool:
        """Reassigned since ``batch`` was fetched, or one of its partitions sought since."""
        if not self._moved_since(batch.epoch, batch.seek_marks):
            return False
        log.info("dropping a batch fetched before a rebalance or a seek", extra={"group": self.group_id})
        return True

    async def _handle_halves(self, events: list[ConsumedEvent], batch: FetchedBatch) -> bool:
        """Handle ``events`` as two halves, in order: each half that fails is split again, down to
        the one message at fault, which alone gets ``max_attempts``."""
        middle = len(events) // 2
        for half in (events[:middle], events[middle:]):
            # Stopping: the batch is dropped (delivered again), as a whole batch's backoff would.
            if self.stopping or not await self._handle_with_retry(half, batch, whole=False):
                return False
        return True

    async def _dead_letter_event(
        self, record: ConsumerRecord, reason: str, kind: str, batch: FetchedBatch
    ) -> bool:
        """Dead-letter the event of ``record`` (see ``_dead_letter_until_sent``), gone through once sent."""
        if not await self._dead_letter_until_sent(record, reason, kind, batch):
            return False
        self._went_through(batch, [(record.topic, record.partition, record.offset)])
        return True

    def _went_through(self, batch: FetchedBatch, done: list[tuple[str, int, int]]) -> None:
        """Record messages of ``batch`` (topic, partition, offset) handled or dead-lettered while
        the rest of it waits (its dead letters are sent first; a failing batch is halved), and mark
        each partition handled up to its first message not through yet. A stop or a revocation
        before the rest is through then commits them: after it they are neither handled nor,
        above all, dead-lettered again. Not once revoked since fetched (see ``_process``)."""
        batch.done.update(done)
        if batch.revocations != self.revocations:
            return
        for topic, partition in {(topic, partition) for topic, partition, _ in done}:
            messages = batch.records[TopicPartition(topic, partition)]
            through = 0
            while through < len(messages) and (topic, partition, messages[through].offset) in batch.done:
                through += 1
            if through:
                self._handled[TopicPartition(topic, partition)] = messages[through - 1].offset + 1

    async def _backoff(self, attempt: int) -> bool:
        """Sleep before the next attempt; True when stop was requested meanwhile."""
        # The exponent capped: past ~1,024 attempts (an outage of ~8.5 h at 30 s) the float
        # overflowed, and the OverflowError killed the loop (its consumer replaced, a rebalance).
        delay = min(0.1 * 2 ** min(attempt - 1, 32), self.backoff_max_s)
        return await wait_event(self._stopping, delay)

    async def commit_handled(self, partitions: set[TopicPartition] | None = None) -> None:
        """Commit the handled offsets (of ``partitions`` only, if given) and forget them; the next
        periodic commit is due ``commit_interval_s`` later.

        A commit of them all that fails otherwise than as the group moved on (the coordinator
        away past aiokafka's retries, an authorization refused) keeps them for the next commit:
        the loop goes on rather than die of it, be replaced (the whole group rebalancing) and
        have them delivered again. Not when a revocation came meanwhile (see ``_handled``). A
        revocation's commit (``partitions`` given) is their last: its failure is raised."""
        chosen = self._handled.keys() if partitions is None else partitions & self._handled.keys()
        offsets = {tp: self._handled.pop(tp) for tp in list(chosen)}
        if partitions is None:
            self._commit_after = time.monotonic() + self.commit_interval_s
        if not offsets:
            return
        revocations = self.revocations
        try:
            await self._commit(offsets)
        except asyncio.CancelledError:
            # Cut short (a drain's deadline, a replaced consumer): kept for the final commit that
            # follows, else its messages came again and its dead letters were sent twice.
            if partitions is None and revocations == self.revocations:
                for tp, offset in offsets.items():
                    self._handled[tp] = max(offset, self._handled.get(tp, offset))
            raise
        except (KafkaError, OSError) as exc:
            if partitions is not None:
                self.commit_failures.counted()  # logged by the revocation, once
                raise
            kept = revocations == self.revocations
            self.commit_failures.failed(
                "commit failed, kept for the next one" if kept else "commit failed, delivered again", exc
            )
            if kept:  # nothing newer can be there (only the loop marks them), but never go back
                for tp, offset in offsets.items():
                    self._handled[tp] = max(offset, self._handled.get(tp, offset))

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        # aiokafka rebalances in the background, even while a batch is handled: partitions taken
        # away meanwhile are re-read by their new owner from the last commit, and our idempotent
        # handlers make the repeat harmless. Committing them would fail (IllegalStateError).
        assignment = self.consumer.assignment()
        owned = {tp: offset for tp, offset in offsets.items() if tp in assignment}
        if not owned:
            return
        try:
            await self.consumer.commit(owned)
        except NOT_OURS_ANYMORE as exc:  # once per rebalance: the offsets are dropped, not retried
            self.commit_failures.counted()
            log.warning(
                "commit failed after rebalance", extra={"group": self.group_id, "error": short_error(exc)}
            )
            return
        self.commit_failures.succeeded()

    async def _dead_letter_until_sent(
        self, message: ConsumerRecord, reason: str, kind: str, batch: FetchedBatch
    ) -> bool:
        """Dead-letter ``message``, retrying a failed send (the broker may be away for a while):
        True once sent; False when asked to stop or reassigned first (then nothing is committed
        and the message comes again)."""
        attempt = 0
        while not self._stale(batch):
            try:
                await self.dead_letter(message, reason, kind)
                return True
            except Exception as exc:
                attempt += 1
                log.warning(
                    "dead-letter send failed, will retry",
                    extra={"group": self.group_id, "attempt": attempt, "error": short_error(exc)},
                )
                if await self._backoff(attempt):
                    return False
        return False

    async def dead_letter(self, message: ConsumerRecord, reason: str, kind: str) -> None:
        """Send the record as consumed (value, key, headers) with why, from where and when."""
        kept = [(name, value) for name, value in message.headers or () if not name.startswith("dlq.")]
        headers = [
            *kept,
            ("dlq.reason", reason.encode()[:2000]),
            ("dlq.group", self.group_id.encode()),
            ("dlq.topic", message.topic.encode()),
            ("dlq.partition", str(message.partition).encode()),
            ("dlq.offset", str(message.offset).encode()),
            ("dlq.failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        # A record with neither key nor value goes with an empty value: the producer sends none such.
        value = b"" if message.value is None and message.key is None else message.value
        try:
            await self.producer.send_and_wait(
                self.dead_letter_topic, value=value, key=message.key, headers=headers
            )
        except MessageSizeTooLargeError:
            # The copy (value plus these headers) is over the size limit the original just fit:
            # retried as is, it would stall the partition for good. The headers still say where
            # the original lies in its topic.
            size = str(len(message.value or b"")).encode()
            await self.producer.send_and_wait(
                self.dead_letter_topic,
                value=b"",
                key=message.key,
                headers=[*headers, ("dlq.value_dropped", size)],
            )
        DEAD_LETTERS.labels(self.group_id, kind).inc()
        MESSAGES.labels(self.group_id, "dead_lettered").inc()
        log.error(
            "message dead-lettered",
            extra={
                "group": self.group_id,
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "reason": reason,
            },
        )

    def _forget_lag(self) -> None:
        """No lag known: a reader of it (metrics' caught_up, /readyz) must not take an old 0 for
        the new consumer's, which may be restored from a checkpoint, far behind."""
        for tp in list(self.lag):
            self.drop_lag(tp)

    async def _update_lag(self, ahead: FetchedBatch | None = None) -> None:
        """Each partition's lag from its high watermark and position; the records of the batch
        taken ``ahead`` (fetched, so behind the position, not handled yet) count as not done."""
        assignment = self.consumer.assignment()
        for tp in [tp for tp in self.lag if tp not in assignment]:
            # Set by a lag update that raced a rebalance: never leave a series for a moved partition.
            self.drop_lag(tp)
        for tp in assignment:
            # Taken away while a position below was awaited (one reset after an assignment waits
            # for the broker): aiokafka's highwater asserts, and the loop died of it (replaced,
            # the whole group rebalanced again).
            if tp not in self.consumer.assignment():
                continue
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await self.consumer.position(tp)
            except KafkaError:
                continue
            fetched = len(ahead.records.get(tp, ())) if ahead is not None else 0
            self._set_lag(tp, highwater - position + fetched)

    async def _update_lag_behind(self, batch: FetchedBatch) -> None:
        """The lag behind a batch that keeps failing (a database outage retried without end).

        The usual update runs between batches and reads the high watermarks of fetches, which
        stop while the fetched records wait: lag would stay at its last value (0, often) while
        messages pile up, and no lag alert would fire. The partitions' ends are asked for instead,
        and the batch's own messages count as not done.
        """
        assignment = self.consumer.assignment()
        try:
            ends = await asyncio.wait_for(self.consumer.end_offsets(list(assignment)), timeout=5)
            positions = {tp: await self.consumer.position(tp) for tp in assignment if tp not in batch.records}
        except Exception as exc:  # the broker may be away too; the next attempt asks again
            log.debug("lag unknown while retrying", extra={"group": self.group_id, "error": short_error(exc)})
            return
        if batch.revocations != self.revocations:
            # Revoked (their lag dropped), and aiokafka's assignment is the old one until the next:
            # set again, the moving partitions' series would stand until then. Not ours to tell.
            return
        behind = {tp: messages[0].offset for tp, messages in batch.records.items()}
        for tp in assignment & ends.keys():
            self._set_lag(tp, ends[tp] - behind.get(tp, positions.get(tp, ends[tp])))

    def _set_lag(self, tp: TopicPartition, lag: int) -> None:
        labels = (self.group_id, tp.topic, str(tp.partition))
        self.lag_labels.add(labels)
        self.lag[tp] = max(0, lag)
        CONSUMER_LAG.labels(*labels).set(self.lag[tp])

    def drop_lag(self, tp: TopicPartition) -> None:
        """Forget ``tp``'s lag and its series (set together by ``_set_lag``)."""
        self.lag.pop(tp, None)
        labels = (self.group_id, tp.topic, str(tp.partition))
        if labels in self.lag_labels:
            self.lag_labels.discard(labels)
            CONSUMER_LAG.remove(*labels)

    def total_lag(self) -> int:
        return sum(self.lag.values())
