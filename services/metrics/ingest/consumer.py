"""Feeding the backlog state from both topics, and checkpointing it with the offsets it covers.

The in-memory state is the effect of every message; it becomes durable when a checkpoint
(state + the next offset of every partition it covers) is committed to the database. After a
crash the service restores the checkpoint and seeks each partition to the stored offset, so
exactly the events after it are replayed: no double counting, no full-history replay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from aiokafka import TopicPartition
from prometheus_client import Gauge, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.metrics.backlog import BacklogState
from services.metrics.backlog.checkpoint import dump, load
from services.metrics.models import MetricsCheckpoint
from shared.events import utc_now
from shared.kafka.consumer import ConsumedEvent

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = Histogram("metrics_checkpoint_seconds", "Time to write one state checkpoint")
CHECKPOINT_BYTES = Gauge("metrics_checkpoint_bytes", "Size of the last state checkpoint")
CHECKPOINT_AGE = Gauge("metrics_checkpoint_timestamp_seconds", "When the last checkpoint was written")


def _tp_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


class BacklogIngest:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        name: str = "metrics",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sessions = sessions
        self.name = name
        self.clock = clock
        self.state = BacklogState()
        self.next_offsets: dict[str, int] = {}
        self.restored = False
        self.events_since_checkpoint = 0

    async def restore(self) -> None:
        async with self.sessions() as session:
            row = await session.get(MetricsCheckpoint, self.name)
        if row is not None:
            self.state = load(row.state)
            self.next_offsets = {k: int(v) for k, v in row.offsets.items()}
            log.info("backlog state restored", extra={"partitions": len(self.next_offsets)})
        self.restored = True

    async def on_assign(self, assigned: set[TopicPartition]) -> dict[TopicPartition, int]:
        """Seek every assigned partition to the offset our checkpoint covers (else: earliest)."""
        seeks: dict[TopicPartition, int] = {}
        for tp in assigned:
            seeks[tp] = self.next_offsets.get(_tp_key(tp.topic, tp.partition), 0)
        return seeks

    async def __call__(self, batch: list[ConsumedEvent]) -> None:
        now = self.clock()
        state = self.state
        for event in batch:
            state.apply(event.envelope, now)
            self.next_offsets[_tp_key(event.topic, event.partition)] = event.offset + 1
        self.events_since_checkpoint += len(batch)

    async def checkpoint(self) -> None:
        if self.events_since_checkpoint == 0 and self.restored:
            return
        started = time.perf_counter()
        # No await between these two lines: the state and the offsets describe the same moment.
        data, offsets = dump(self.state), dict(self.next_offsets)
        pending = self.events_since_checkpoint
        async with self.sessions() as session, session.begin():
            row = await session.get(MetricsCheckpoint, self.name)
            if row is None:
                session.add(
                    MetricsCheckpoint(name=self.name, state=data, offsets=offsets, updated_at=utc_now())
                )
            else:
                row.state, row.offsets, row.updated_at = data, offsets, utc_now()
        self.events_since_checkpoint -= pending
        CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
        CHECKPOINT_BYTES.set(len(data))
        CHECKPOINT_AGE.set(time.time())
