"""Runs a :class:`ConsumerLoop` inside a service's lifespan and stops it gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

from shared.kafka.consumer import AheadHandler, AssignHandler, BatchHandler, ConsumerLoop, RevokeHandler
from shared.settings import ConsumerSettings

log = logging.getLogger(__name__)


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
        # RangePartitionAssignor keeps partition p of every topic on one member (co-partitioning).
        assignor: type[AbstractPartitionAssignor] = RoundRobinPartitionAssignor,
    ) -> None:
        self.consumer = AIOKafkaConsumer(
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
            on_revoke=on_revoke,
            on_next_batch=on_next_batch,
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run(), name=f"consumer-{self.loop.group_id}")

    async def _run(self) -> None:
        try:
            await self.loop.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer loop crashed", extra={"group": self.loop.group_id})
            raise

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def stop(self, timeout_s: float = 15.0) -> None:
        """Drain: finish the batch in hand, commit it, leave the group."""
        self.loop.stop()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, timeout_s)
            except TimeoutError:
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
            except Exception:
                pass  # already logged in _run
        await self.consumer.stop()
