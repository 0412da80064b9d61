"""Feeding the backlog state from both topics, one shard per partition, checkpointed with offsets.

Both topics are keyed by ticket_key and have the same partition count, so partition p of
``tickets`` and partition p of ``routing`` carry the same tickets. The state is sharded by that
partition number: shard p is one :class:`BacklogState` fed by tickets-p and routing-p, and its
checkpoint row ``f"{name}:{p}"`` holds the state and the next offset of both partitions. Several
metrics instances in one consumer group therefore own disjoint sets of tickets; their gauges
add up in PromQL.

On assignment a shard is restored from its row and both partitions are sought to the offsets it
covers (exactly the events after it are replayed: no double counting, no full-history replay).
On revocation the shard is checkpointed and dropped; the new owner restores that checkpoint.
aiokafka runs both callbacks beside the consumer loop, so a batch may be in the loop meanwhile
(retried, halved, being committed). The batch handler never awaits: a callback sees a batch
applied wholly or not at all. A revocation pops its shards before its first await, so a batch
handled after it skips their events (not committed: the new owner replays them from the
revocation checkpoint), and a batch fetched before an assignment is dropped by the loop, not
applied to a restored shard.

A shard's clock (ages, overdue, deadlines passing) follows its events while it replays, and the
wall clock once caught up (every topic of its partition read to its end once since assigned, as
``metrics_backlog_caught_up`` reports): events applied hours after they happened must not count a
deadline as missed at the wall time, before the later events that met it are applied. The same
holds whenever a live shard falls behind again (its consumer knows of records it has not applied,
see :meth:`BacklogIngest.behind`): its clock then stays at its events' time until it has read up to
the partition's end, and every event is applied at its own time, the wall clock only following the
batch that leaves nothing unread. A replaying
shard's counters and histograms are not exported: restored from a checkpoint older than a crash,
they are below what the instance exported before it, on the same series.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import TopicPartition
from prometheus_client import Gauge, Histogram
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.metrics.backlog import BacklogState
from services.metrics.backlog.checkpoint import capture, load, seal
from services.metrics.backlog.snapshot import Snapshot
from services.metrics.models import MetricsCheckpoint
from shared.db.errors import is_statement_timeout
from shared.events import utc_now
from shared.kafka.consumer import ConsumedEvent, is_transient

log = logging.getLogger(__name__)

# The consumer's ``end_offsets``: the next offset to be written to each partition.
EndOffsets = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]
# The consumer's view of one partition, without a request: (high watermark of its last fetch, lag
# after the last batch it handled, or None while a batch is in hand). See BacklogIngest.behind.
PartitionView = Callable[[TopicPartition], tuple[int | None, int | None]]

CHECKPOINT_SECONDS = Histogram(
    "metrics_checkpoint_seconds", "Time to encode and write one shard's checkpoint, in seconds"
)
CHECKPOINT_BYTES = Gauge(
    "metrics_checkpoint_bytes", "Size of the last checkpoint of the shard, in bytes", ["partition"]
)
# When the shard's checkpoint row last held everything the shard applied: written then, or found
# with nothing new to write. A quiet shard's row stays current without a write; its age must not
# grow as if its checkpoints failed (a crash would replay nothing of it).
CHECKPOINT_TIME = Gauge(
    "metrics_checkpoint_timestamp_seconds",
    "Unix time the shard's checkpoint last held all it applied (written, or nothing new since)",
    ["partition"],
)
SHARDS = Gauge("metrics_partitions_owned", "Partitions (backlog shards) this instance owns")


def _tp_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


@dataclass
class Shard:
    partition: int
    state: BacklogState
    next_offsets: dict[str, int]  # {"topic:partition": next offset to read}; changed under state.lock
    pending: int = 0  # events applied since the last checkpoint; changed under state.lock
    persisted: bool = False  # a checkpoint row describes this state
    caught_up: set[str] = field(default_factory=set)  # topics read to their end once since assigned
    live: bool = False  # all of them: the clock follows the wall clock, no longer the events
    topics: set[str] = field(default_factory=set)  # of its partition, assigned or read


class BacklogIngest:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        name: str = "metrics",
        clock: Callable[[], datetime] = utc_now,
        retry_s: float = 1.0,
        revoke_budget_s: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.name = name
        self.clock = clock
        self.retry_s = retry_s
        # on_revoke's time for its checkpoints: the group's rebalance timeout is aiokafka's default,
        # the session timeout (10 s, shared/kafka/runner.py), and a member whose listener outlives
        # it is thrown out of the group. Half of it leaves the commit and the rejoin room.
        self.revoke_budget_s = revoke_budget_s
        self.shards: dict[int, Shard] = {}
        # Shards checkpointed at revocation, reused if we get the partition back and nobody
        # checkpointed it meanwhile (an eager rebalance revokes everything, then reassigns).
        self._parked: dict[int, Shard] = {}
        self._lock = asyncio.Lock()  # one checkpoint/restore/drop at a time
        # Set to the consumer's end_offsets by the app: restored offsets are checked against it.
        self.end_offsets: EndOffsets | None = None
        # Set to the consumer's view of its partitions by the app: a live shard with records it
        # has not applied yet keeps its events' time (see behind). None: never behind.
        self.partition_view: PartitionView | None = None
        # Set to the consumer's assignment by the app. A consumer replaced after its loop failed
        # was closed without a revocation: its shards are held until the new one's assignment,
        # while their partitions may be another instance's. Held so, a shard is neither exported
        # nor counted ready (two instances would add up its tickets). None: every shard is owned.
        self.assignment: Callable[[], set[TopicPartition]] | None = None

    def row_name(self, partition: int) -> str:
        return f"{self.name}:{partition}"

    def states(self) -> list[BacklogState]:
        return [shard.state for _, shard in self._assigned()]

    def _assigned(self) -> list[tuple[int, Shard]]:
        """The shards of the partitions the consumer is assigned (see ``assignment``)."""
        shards = list(self.shards.items())
        if self.assignment is None:
            return shards
        partitions = {tp.partition for tp in self.assignment()}
        return [(p, shard) for p, shard in shards if p in partitions]

    def behind(self, shard: Shard) -> bool:
        """Whether the consumer knows of records of the shard's partition that it has not applied.

        Known: below the high watermark of the last fetch, at or past the shard's next offset. A
        record the consumer loop handled without the shard (dead-lettered as undecodable) shows as
        its lag being 0 once the batch is done, so it does not hold the clock until the next event.
        Records written after the last fetch are not known: their wait is not covered.
        """
        view = self.partition_view
        if view is None:
            return False
        for topic in shard.topics:
            highwater, lag = view(TopicPartition(topic, shard.partition))
            if (
                highwater is not None
                and highwater > shard.next_offsets.get(_tp_key(topic, shard.partition), 0)
                and lag != 0
            ):
                return True
        return False

    def _follow_wall_clock(self, shard: Shard) -> bool:
        # Live and nothing left to read: deadlines pass with the wall clock (quiet periods too);
        # behind, the events still unread may meet them (resolved before due, read late).
        return shard.live and not self.behind(shard)

    def advance_clocks(self) -> None:
        """Move the clocks of the caught-up shards to now; a replaying one, or a live one behind
        its partition's end, follows its events."""
        now = self.clock()
        for shard in list(self.shards.values()):
            if self._follow_wall_clock(shard):
                shard.state.advance_clock(now)

    def snapshots(self) -> list[tuple[int, Snapshot]]:
        """Each owned shard's aggregates by partition, the caught-up ones as of now."""
        now = self.clock()
        out = []
        for p, shard in sorted(self._assigned(), key=lambda item: item[0]):
            with shard.state.lock:
                if self._follow_wall_clock(shard):
                    shard.state.advance_clock(now)
                snap = shard.state.snapshot()
            snap.counters_current = shard.live
            out.append((p, snap))
        return out

    # ---------------------------------------------------------------- rebalance hooks
    async def on_assign(self, assigned: set[TopicPartition]) -> dict[TopicPartition, int]:
        """Restore the shard of every newly assigned partition number; seek to what it covers.

        The fetcher may already hold records read from the committed offsets while the shards are
        loading. Shards are therefore restored off to the side and published together with the
        offsets to seek to, with no await in between (the caller seeks before yielding): no batch
        can reach a restored shard before the seek, so nothing between the checkpoint and the
        committed offset is skipped.
        """
        topics = {tp.topic for tp in assigned}
        split = [tp for tp in assigned if {TopicPartition(t, tp.partition) for t in topics} - assigned]
        if split:  # another member reads the other topic of these partitions: shards would clash
            log.error(
                "partitions not co-assigned across topics (use the range assignor)", extra={"tps": split}
            )
        async with self._lock:
            # Shards still held were not revoked: their consumer was replaced after its loop
            # failed, and closing one calls no listener. Another member may have owned them since:
            # one is reused only if its checkpoint still describes it, as after a revocation, and
            # one not assigned now is dropped (its owner replays from the checkpoint).
            partitions = {tp.partition for tp in assigned}
            for p in list(self.shards):
                self._parked[p] = self.shards.pop(p)
                if p not in partitions:
                    _forget_checkpoint_gauges(p)
            restored: dict[int, Shard] = {}
            for p in sorted(partitions):
                restored[p] = await self._restore(p)
                restored[p].caught_up.clear()
                restored[p].live = False
                restored[p].topics |= topics
            await self._read_recreated_from_start(restored, assigned)
            self.shards.update(restored)
            self._parked.clear()
            SHARDS.set(len(self.shards))
            log.info(
                "partitions assigned",
                extra={"partitions": sorted({tp.partition for tp in assigned}), "restored": sorted(restored)},
            )
            return {
                tp: self.shards[tp.partition].next_offsets.get(_tp_key(tp.topic, tp.partition), 0)
                for tp in assigned
            }

    async def _read_recreated_from_start(
        self, restored: dict[int, Shard], assigned: set[TopicPartition]
    ) -> None:
        """Read a partition from its start when its checkpointed offset is past its end.

        Offsets only grow, so such a checkpoint was taken from another incarnation of the topic:
        it was deleted and created again (the in-memory dev broker restarted while the database
        kept the checkpoints, say). Its offsets would make every event of the new topic look
        applied already, so the new tickets would go uncounted. The state is kept: its tickets
        are still open as far as the router knows, and the state ignores an event id seen twice.
        A topic re-created and refilled past the old offset cannot be told apart this way.
        """
        checked = [
            tp
            for tp in assigned
            if tp.partition in restored
            and _tp_key(tp.topic, tp.partition) in restored[tp.partition].next_offsets
        ]
        if self.end_offsets is None or not checked:
            return
        delay = self.retry_s
        while True:
            try:
                ends = await self.end_offsets(checked)
                break
            except Exception as exc:
                # A broker briefly away is asked again, as _restore reads its row again: skipped,
                # the check would let a checkpoint of an earlier incarnation through, its shard
                # skipping every new event as applied already and soon counted caught up. Until
                # then no shard is published, so the instance is not ready.
                if not is_transient(exc):  # the check is a safeguard: never fail an assignment
                    log.warning(
                        "could not compare checkpoints with the partitions' ends", extra={"error": repr(exc)}
                    )
                    return
                log.warning("partitions' ends unknown, will ask again", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(2 * delay, 30.0)
        for tp in checked:
            shard, key = restored[tp.partition], _tp_key(tp.topic, tp.partition)
            end = ends.get(tp)
            if end is not None and shard.next_offsets[key] > end:
                log.warning(
                    "checkpoint is past the partition's end (topic re-created?): reading it from the start",
                    extra={"partition": key, "checkpoint_offset": shard.next_offsets[key], "end_offset": end},
                )
                shard.next_offsets[key] = 0
                shard.persisted = False  # the next checkpoint records the new offsets

    async def on_revoke(self, revoked: set[TopicPartition]) -> None:
        """Checkpoint and drop the shards of the revoked partitions, before they move, within
        ``revoke_budget_s``: a shard not written by then is dropped unwritten (its new owner
        replays from its previous checkpoint: nothing is lost but replay time)."""
        log.info("partitions revoked", extra={"partitions": sorted({tp.partition for tp in revoked})})
        # Out of the exposition, the handler and the periodic checkpoint at once, before any wait.
        shards = [
            (p, s)
            for p in sorted({tp.partition for tp in revoked})
            if (s := self.shards.pop(p, None)) is not None
        ]
        SHARDS.set(len(self.shards))
        try:
            async with asyncio.timeout(self.revoke_budget_s):
                # Waits for one shard's write at most: checkpoint() takes the lock shard by shard.
                async with self._lock:
                    for p, shard in shards:
                        try:
                            await self._checkpoint(shard)
                            self._parked[p] = shard
                        except Exception as exc:
                            # The new owner replays from the previous checkpoint: nothing is lost.
                            log.warning(
                                "checkpoint at revocation failed", extra={"partition": p, "error": repr(exc)}
                            )
        except TimeoutError:
            log.warning(
                "checkpoints at revocation out of time, their new owner replays from the previous ones",
                extra={
                    "partitions": [p for p, _ in shards if p not in self._parked],
                    "budget_s": self.revoke_budget_s,
                },
            )
        for p, _ in shards:
            _forget_checkpoint_gauges(p)

    async def _restore(self, p: int) -> Shard:
        delay = self.retry_s
        while True:
            try:
                return await self._load_shard(p)
            except Exception as exc:
                # A statement timeout is a message's failure in the consumer loop; this read of
                # one row has no message to give up on: the database is busy, read again.
                if not (is_transient(exc) or is_statement_timeout(exc)):
                    raise
                log.warning("shard restore failed, will retry", extra={"partition": p, "error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(2 * delay, 30.0)

    async def _load_shard(self, p: int) -> Shard:
        parked = self._parked.get(p)
        async with self.sessions() as session:
            if parked is not None:
                offsets = await session.scalar(
                    select(MetricsCheckpoint.offsets).where(MetricsCheckpoint.name == self.row_name(p))
                )
                if offsets == parked.next_offsets:
                    return parked
            row = await session.get(MetricsCheckpoint, self.row_name(p))
        if row is None:
            return Shard(p, BacklogState(), {})
        try:
            state = await asyncio.to_thread(load, row.state)
        except Exception as exc:  # an older format, a damaged row (zlib.error, struct.error...)
            # Unreadable: rebuild from the start of the partitions. Raising would leave every
            # partition of the assignment without a shard, and their events skipped.
            log.error("checkpoint unreadable, replaying from 0", extra={"partition": p, "error": repr(exc)})
            return Shard(p, BacklogState(), {})
        offsets = {k: int(v) for k, v in row.offsets.items()}
        log.info("backlog shard restored", extra={"partition": p, "offsets": offsets})
        return Shard(p, state, offsets, persisted=True)

    # ---------------------------------------------------------------- batch handler
    async def __call__(self, batch: list[ConsumedEvent]) -> None:
        now = self.clock()
        by_partition: dict[int, list[ConsumedEvent]] = {}
        for event in batch:
            by_partition.setdefault(event.partition, []).append(event)
        for p, events in by_partition.items():
            shard = self.shards.get(p)
            if shard is None:
                # Revoked while this batch waited for a retry: the new owner replays these
                # events from our revocation checkpoint, so skipping them here loses nothing.
                continue
            applied = 0
            with shard.state.lock:  # state and offsets move together (see checkpoint)
                try:
                    for event in events:
                        key = _tp_key(event.topic, event.partition)
                        if event.offset < shard.next_offsets.get(key, 0):
                            continue  # already in the state (a redelivery): counting it twice would drift
                        # The event's instant, never past now (the contract's times are aware), nor
                        # past when we produced it: a ticket event's occurred_at is the source's clock,
                        # and one running ahead would move the shard's clock past deadlines the events
                        # after it meet. Live shards too: the events of a batch were all written
                        # before it was read, so a deadline between two of them passes between them.
                        envelope = event.envelope
                        shard.state.apply(envelope, min(envelope.occurred_at, envelope.produced_at, now))
                        shard.next_offsets[key] = event.offset + 1
                        shard.topics.add(event.topic)
                        applied += 1
                finally:  # an event that fails leaves those before it applied: to checkpoint
                    shard.pending += applied
                if self._follow_wall_clock(shard):
                    shard.state.advance_clock(now)  # the batch left nothing unread: back to now

    # ---------------------------------------------------------------- checkpoints
    async def checkpoint(self) -> None:
        """Checkpoint every owned shard that changed since its last checkpoint."""
        for shard in list(self.shards.values()):
            # The lock shard by shard: a revocation waits for the write in hand, not for them all.
            async with self._lock:
                if self.shards.get(shard.partition) is shard:  # not revoked or replaced meanwhile
                    await self._checkpoint(shard)

    async def _checkpoint(self, shard: Shard) -> None:
        if shard.pending == 0 and shard.persisted:
            CHECKPOINT_TIME.labels(str(shard.partition)).set(time.time())  # its row is current
            return
        started = time.perf_counter()
        data, offsets, pending = await asyncio.to_thread(_encode, shard)
        name = self.row_name(shard.partition)
        async with self.sessions() as session, session.begin():
            row = await session.get(MetricsCheckpoint, name)
            if row is None:
                session.add(MetricsCheckpoint(name=name, state=data, offsets=offsets, updated_at=utc_now()))
            else:
                row.state, row.offsets, row.updated_at = data, offsets, utc_now()
        with shard.state.lock:
            shard.pending -= pending
        shard.persisted = True
        CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
        CHECKPOINT_BYTES.labels(str(shard.partition)).set(len(data))
        CHECKPOINT_TIME.labels(str(shard.partition)).set(time.time())

    def drop_unassigned(self, assignment: set[TopicPartition]) -> None:
        """Drop the shards of partitions not in ``assignment``, the consumer's settled one: shards
        held over a consumer replaced without a revocation (see ``assignment``) whose new one was
        assigned other partitions or none (``on_assign``, which drops them otherwise, is not
        called for an empty assignment). Parked: reused if assigned again, as after a revocation."""
        partitions = {tp.partition for tp in assignment}
        for p in [p for p in self.shards if p not in partitions]:
            self._parked[p] = self.shards.pop(p)
            _forget_checkpoint_gauges(p)
        SHARDS.set(len(self.shards))

    # ---------------------------------------------------------------- readiness
    def caught_up(self, assignment: set[TopicPartition], lag: dict[TopicPartition, int]) -> bool:
        """Every assigned partition has a restored shard and was read to its end once since;
        the shards of the partitions that were go live (see the module docstring)."""
        ready = True
        behind: set[int] = set()
        for tp in assignment:
            shard = self.shards.get(tp.partition)
            if shard is None:
                ready = False
                continue
            if lag.get(tp) == 0:
                shard.caught_up.add(tp.topic)
            if tp.topic not in shard.caught_up:
                ready = False
                behind.add(tp.partition)
        for tp in assignment:
            shard = self.shards.get(tp.partition)
            if shard is not None and tp.partition not in behind:
                shard.live = True
        # Shards held over a replaced consumer, not assigned (again) yet: not ours to serve.
        return ready and set(self.shards) <= {tp.partition for tp in assignment}


def _forget_checkpoint_gauges(partition: int) -> None:
    for gauge in (CHECKPOINT_BYTES, CHECKPOINT_TIME):
        with contextlib.suppress(KeyError):  # never checkpointed here
            gauge.remove(str(partition))


def _encode(shard: Shard) -> tuple[bytes, dict[str, int], int]:
    # Worker thread: the state lock keeps the handler (and scrapes) out while the state, the
    # offsets it covers and the count of events it includes are copied together; the
    # compression, most of the time, runs after the lock is released.
    with shard.state.lock:
        body, offsets, pending = capture(shard.state), dict(shard.next_offsets), shard.pending
    return seal(body), offsets, pending
