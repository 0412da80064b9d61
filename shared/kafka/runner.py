"""Runs a :class:`ConsumerLoop` inside a service's lifespan, restarts its consumer when a
rebalance never ends, and stops it gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import KafkaError
from prometheus_client import Counter

from shared.cancellation import raise_if_cancelled
from shared.kafka.consumer import AheadHandler, AssignHandler, BatchHandler, ConsumerLoop, RevokeHandler
from shared.kafka.fetched import short_error
from shared.kafka.throttle import FetchThrottle
from shared.overlap import IdleWork
from shared.runtime import close_within, stop_tasks
from shared.settings import ConsumerSettings

log = logging.getLogger(__name__)

CONSUMER_RESTARTS = Counter(
    "consumer_restarts_total",
    "Consumers replaced because a rebalance did not end in time or the loop failed",
    ["group"],
)
WATCH_PERIOD_S = 1.0
DRAIN_CHECK_S = 0.1  # how often a stopping runner looks whether its loop waits on a rebalance
# Longest a stopping runner waits for its consumer to leave the group and close. A broker that
# answers takes milliseconds; a black-holed one would hold aiokafka's LeaveGroup for its request
# timeout (40 s), past the pod's grace period (60 s, up to 20 s of it for HTTP requests and 15 of
# it draining), and the process would be killed before closing its pool and producer. Cut short,
# the handled offsets are already committed (drain) and the coordinator drops the member after
# its session timeout (10 s): its partitions move that much later, nothing is read twice.
CONSUMER_CLOSE_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 15.0  # longest a stopping runner lets the batch in hand finish and commit
# Time to commit what a loop handled when its task ends without its own final commit: a drain
# cut short (kept inside the drain's bound, which the grace period counts on), a failed loop
# replaced. A broker that answers commits in milliseconds.
FINAL_COMMIT_S = 2.0
# Longest the watchdog waits for a stuck consumer to leave before replacing it: the group's
# session timeout (make_consumer), after which the coordinator drops the member whether or not it
# left. Not on the shutdown path (a stop cancels the replacement), so not in the grace period.
STUCK_CONSUMER_CLOSE_TIMEOUT_S = 10.0


def make_consumer(
    settings: ConsumerSettings,
    group_id: str,
    *topics: str,
    assignor: type[AbstractPartitionAssignor] = RoundRobinPartitionAssignor,
) -> AIOKafkaConsumer:
    """A consumer of our group settings (also the bench's bare loop, so that both batch alike)."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_servers(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.consumer_batch_max,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        # A long retry of one batch must not get us thrown out of the group.
        max_poll_interval_ms=600_000,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        partition_assignment_strategy=(assignor,),
    )


class ConsumerRunner:
    def __init__(
        self,
        settings: ConsumerSettings,
        producer: AIOKafkaProducer,
        *,
        group_id: str,
        topics: list[str],
        handler: BatchHandler,
        on_assign: AssignHandler | None = None,
        on_revoke: RevokeHandler | None = None,
        on_next_batch: AheadHandler | None = None,
        idle: IdleWork | None = None,
        throttle: FetchThrottle | None = None,
        # RangePartitionAssignor keeps partition p of every topic on one member (co-partitioning).
        assignor: type[AbstractPartitionAssignor] = RoundRobinPartitionAssignor,
        consumer_factory: Callable[[], AIOKafkaConsumer] | None = None,
    ) -> None:
        self.new_consumer = consumer_factory or functools.partial(
            make_consumer, settings, group_id, assignor=assignor
        )
        self.stuck_rebalance_s = settings.consumer_stuck_rebalance_s
        self.consumer = self.new_consumer()
        self.loop = ConsumerLoop(
            consumer=self.consumer,
            producer=producer,
            topics=topics,
            group_id=group_id,
            handler=handler,
            dead_letter_topic=settings.topic_dead_letter,
            batch_max=settings.consumer_batch_max,
            poll_timeout_ms=settings.consumer_poll_timeout_ms,
            backoff_max_s=settings.consumer_retry_backoff_max_s,
            on_assign=on_assign,
            max_attempts=settings.consumer_max_attempts,
            pause_before_commit_s=settings.fault_pause_before_commit_s,
            commit_interval_s=settings.consumer_commit_interval_ms / 1000,
            on_revoke=on_revoke,
            on_next_batch=on_next_batch,
            idle=idle,
            throttle=throttle,
        )
        self.task: asyncio.Task[None] | None = None
        self.watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run(), name=f"consumer-{self.loop.group_id}")
        self.watchdog = asyncio.create_task(self._watch(), name=f"consumer-watchdog-{self.loop.group_id}")

    async def _run(self) -> None:
        try:
            await self.loop.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer loop crashed", extra={"group": self.loop.group_id})
            raise

    async def _watch(self) -> None:
        """A rebalance that outlasts ``stuck_rebalance_s`` (several session timeouts) is stuck: the
        embedded broker (tansu) moves a group on only when its members send requests, and a member
        can loop in JoinGroup/SyncGroup for ever after another was killed. A new consumer joins as a
        new member, which makes the coordinator form the group again and expire the dead one."""
        while True:
            await asyncio.sleep(WATCH_PERIOD_S)
            loop = self.loop
            if loop.stopping:
                continue
            # A loop that died of an error nobody foresaw: its consumer would stay in the group and
            # keep its partitions unread. A new member re-reads them from the last commit.
            failed = self.task is not None and self.task.done()
            stuck = loop.rebalancing_for() > self.stuck_rebalance_s and not loop.in_batch
            if failed or stuck:
                try:
                    await self._replace_consumer("consumer loop failed" if failed else "rebalance not done")
                except Exception:  # logged; the next period looks again (the clock keeps running)
                    raise_if_cancelled()  # the error may stand for a cancellation: stop awaits us
                    log.exception("replacing the consumer failed", extra={"group": loop.group_id})

    async def _replace_consumer(self, why: str) -> None:
        log.warning(
            f"{why}, replacing the consumer",
            extra={"group": self.loop.group_id, "seconds": round(self.loop.rebalancing_for(), 1)},
        )
        CONSUMER_RESTARTS.labels(self.loop.group_id).inc()
        # A new member joins from now: until it is assigned, readers of the loop (the metrics
        # service's readiness) must not take the closed consumer's empty assignment as settled.
        self.loop.rebalance_started = time.monotonic()
        if self.task is not None:  # waiting for an assignment inside getmany: no batch in hand
            self.task.cancel()
            await _wait_ended(self.task)
        # A failed loop may hold handled offsets not committed yet (the commit interval, what went
        # through of its last batch): committed while the old member still owns its partitions,
        # the new one does not handle them again. A stuck one holds none (revoked: committed).
        await self._commit_handled(FINAL_COMMIT_S)
        # Closing waits for the stuck coordination: bounded, and quiet (the warning above says
        # why; a failed or cut-short leave is expected of a stuck member).
        with contextlib.suppress(Exception):
            await close_within(
                self.consumer.stop(),
                STUCK_CONSUMER_CLOSE_TIMEOUT_S,
                "replaced consumer did not stop in time; left to the group's session timeout",
                level=logging.INFO,
                group=self.loop.group_id,
            )
        self.consumer = self.loop.consumer = self.new_consumer()
        delay = 0.5
        while True:  # the broker may be down as well: the loop resumes once it is back
            try:
                await self.consumer.start()
                break
            except (KafkaError, OSError) as exc:
                log.warning(
                    "new consumer cannot start yet", extra={"group": self.loop.group_id, "error": str(exc)}
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.task = asyncio.create_task(self._run(), name=f"consumer-{self.loop.group_id}")

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Ask the loop to stop and wait until it has finished the batch in hand and committed
        (cancelled ``FINAL_COMMIT_S`` before ``timeout_s``, to commit what it handled before that
        batch in the time left). A loop waiting in its poll for a rebalance to end has
        nothing to finish (what it handled was committed when its partitions were revoked), and
        aiokafka's poll waits for the assignment without limit: it is cancelled at once. A
        cancelled loop is awaited at most ``TASK_STOP_TIMEOUT_S`` (see stop_tasks)."""
        self.loop.stop()
        task = self.task
        if task is None:
            return
        commit_s = min(FINAL_COMMIT_S, timeout_s / 4)
        deadline = time.monotonic() + timeout_s - commit_s
        while not task.done():
            left = deadline - time.monotonic()
            if left <= 0 or (self.loop.polling and self.loop.rebalance_started is not None):
                task.cancel()
                break
            await asyncio.wait({task}, timeout=min(left, DRAIN_CHECK_S))
        # Bounded (else a replacement that stopping interrupted had cancelled it): a loop that lost
        # its cancellation is logged and left behind, and the stop goes on to leave the group.
        await stop_tasks([task])
        # A loop cut short (or failed before) did not commit what it handled: done here. One that
        # ended as asked did, and left nothing to commit (no request then). One left behind only
        # marks an offset once its batch is handled: what it marked so far is safe to commit.
        await self._commit_handled(commit_s)

    async def _commit_handled(self, seconds: float) -> None:
        """Commit what the loop handled (its batches before the one cut short, and what went
        through of that one), given up after ``seconds``: else it is delivered again."""
        try:
            await close_within(
                self.loop.commit_handled(),
                seconds,
                "handled offsets not committed in time; they are delivered again",
                group=self.loop.group_id,
            )
        except Exception as exc:  # the same: delivered again; the stop goes on
            log.warning(
                "commit of the handled offsets failed",
                extra={"group": self.loop.group_id, "error": short_error(exc)},
            )

    async def stop(self, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
        """Drain: finish the batch in hand, commit it, leave the group (given up after
        ``CONSUMER_CLOSE_TIMEOUT_S``)."""
        if self.watchdog is not None:  # bounded: one that lost its cancellation is left behind
            await stop_tasks([self.watchdog])
        await self.drain(timeout_s)
        await close_within(
            self.consumer.stop(),
            CONSUMER_CLOSE_TIMEOUT_S,
            "consumer did not stop in time; left to the group's session timeout",
            group=self.loop.group_id,
        )


async def _wait_ended(task: asyncio.Task[None]) -> None:
    """Wait for ``task`` to end however it ends, without swallowing our own cancellation."""
    try:
        await task
    except asyncio.CancelledError:
        raise_if_cancelled()
    except Exception:
        pass  # a failed loop was logged in _run
