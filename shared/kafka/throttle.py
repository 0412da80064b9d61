"""Topics read at most every so often: fewer fetches for events nobody waits on.

The metrics service reads the ticket topic only to count tickets received (its gauges follow the
routing topic). Read with every fetch, that topic costs the broker as much as the router's own
reads of it: on the embedded broker (tansu, memory storage) every fetch that finds new data lists
all of the partition's stored batches, so the extra reads made the end-to-end p99 at 500/s about
twice what it is without them. On Apache Kafka a fetch costs less, but fewer, fuller fetches still
save both sides CPU.

:class:`FetchThrottle` pauses a throttled partition once a fetch has caught it up (its last record
handed on reaches the high watermark the fetch reported) and resumes it ``interval_s`` later; the
next fetch then brings everything that arrived meanwhile. A partition behind keeps being fetched
at full speed until it catches up, so a backlog drains as before. Pausing leaves the position
where it is: nothing is skipped, and a buffered fetch of a paused partition is dropped by aiokafka
and fetched again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from aiokafka.structs import ConsumerRecord


class FetchThrottle:
    def __init__(
        self,
        topics: Collection[str],
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topics = frozenset(topics)
        self.interval_s = interval_s
        self.clock = clock
        self._resume_at: dict[TopicPartition, float] = {}  # paused by us, until then

    @property
    def enabled(self) -> bool:
        return bool(self.topics) and self.interval_s > 0

    def paused(self) -> set[TopicPartition]:
        return set(self._resume_at)

    def forget(self) -> None:
        """After an assignment or with a new consumer: aiokafka's fresh partition states are not
        paused, and the partitions paused before may be gone."""
        self._resume_at.clear()

    def after_fetch(
        self, consumer: AIOKafkaConsumer, records: Mapping[TopicPartition, Sequence[ConsumerRecord]]
    ) -> None:
        """Pause the throttled partitions this fetch caught up. Called right after ``getmany``,
        before the loop awaits anything, so that the fetcher's next request leaves them out."""
        if not self.enabled:
            return
        until = self.clock() + self.interval_s
        assigned = consumer.assignment()
        for tp, batch in records.items():
            if tp.topic not in self.topics or not batch or tp in self._resume_at:
                continue
            if tp not in assigned:  # taken away while the fetch was checked (highwater asserts)
                continue
            highwater = consumer.highwater(tp)
            if highwater is None or batch[-1].offset + 1 < highwater:
                continue  # behind: fetched at full speed until caught up
            consumer.pause(tp)
            self._resume_at[tp] = until

    def resume_due(self, consumer: AIOKafkaConsumer) -> None:
        """Resume the partitions whose interval has passed."""
        if not self._resume_at:
            return
        now = self.clock()
        for tp in [tp for tp, at in self._resume_at.items() if at <= now]:
            del self._resume_at[tp]
            try:
                consumer.resume(tp)
            except IllegalStateError:  # no longer assigned: nothing to resume
                continue

    def wait_ms(self, timeout_ms: int) -> int:
        """``timeout_ms`` shortened to the next resumption, so that a quiet poll cannot hold a
        paused partition past its interval."""
        if not self._resume_at or timeout_ms <= 0:
            return timeout_ms
        left = min(self._resume_at.values()) - self.clock()
        return max(1, min(timeout_ms, math.ceil(left * 1000)))
