"""Fetched offsets without holes: a fetch that skips a record is cut there and read again.

Our topics are neither compacted nor transactional, so the offsets of a partition are consecutive.
A fetch can still skip one: the embedded broker (tansu, memory storage) fixes a produced batch's
offset before it stores the batch, and a fetch in between returns the batches after it. aiokafka
takes the records as they come (a compacted topic has gaps too), so the consumer's position moves
past an offset it never saw: the record is lost to this consumer group for good, with a lag of 0.
Two intakes writing one partition at once made the metrics service miss a ticket that way, in two
CI runs of the scale-out test.

:class:`OffsetContinuity` keeps the next offset expected of every partition: the consumer's
position before a fetch, or the offset a rebalance sought it to, then past each record handed on.
A fetch that starts beyond it, or skips one inside, is cut at the hole and its partition sought back
there; the next fetch gets the record once the broker has stored it. A fetch that starts past it
because retention deleted the records below the log's start is no hole (:meth:`deleted_below`). A
hole still there after ``grace_s`` and ``min_fetches`` fetches is real (a topic someone else
compacted): it is accepted, logged and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter

log = logging.getLogger(__name__)

OFFSET_HOLES = Counter(
    "consumer_offset_holes_total",
    "Holes in fetched offsets: read again from the hole (refetched, once a hole), gone on past once "
    "it persisted (accepted), or below the partition's log start (deleted: removed by retention)",
    ["group", "outcome"],
)
OUTCOMES = ("refetched", "accepted", "deleted")

Records = dict[TopicPartition, list[ConsumerRecord]]


@dataclass(slots=True)
class _Hole:
    offset: int  # the first offset missing
    since: float  # monotonic time it was first seen
    fetches: int = 1  # fetches that showed it


class OffsetContinuity:
    def __init__(
        self,
        group: str,
        *,
        grace_s: float = 2.0,
        min_fetches: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group = group
        self.grace_s = grace_s
        self.min_fetches = min_fetches
        self.clock = clock
        self._expected: dict[TopicPartition, int] = {}
        self._holes: dict[TopicPartition, _Hole] = {}
        for outcome in OUTCOMES:  # from 0: an alert on increase() sees the first accepted hole
            OFFSET_HOLES.labels(group, outcome)

    def forget(self) -> None:
        """A new assignment: positions start again from commits and seeks, learned anew."""
        self._expected.clear()
        self._holes.clear()

    def knows(self, tp: TopicPartition) -> bool:
        return tp in self._expected

    def start_at(self, tp: TopicPartition, position: int) -> None:
        """The consumer's position of ``tp`` before a fetch: where its records must begin."""
        self._expected[tp] = position

    def leading_holes(self, records: Records) -> dict[TopicPartition, int]:
        """The partitions whose fetch starts past the offset expected, with that offset."""
        out: dict[TopicPartition, int] = {}
        for tp, messages in records.items():
            expected = self._expected.get(tp)
            if expected is not None and messages[0].offset > expected:
                out[tp] = expected
        return out

    def deleted_below(self, tp: TopicPartition, log_start: int) -> None:
        """The partition's log starts at ``log_start``, past the offset expected: what lay below
        was deleted (retention), and the consumer was reset to the start. Not a hole."""
        expected = self._expected.get(tp)
        if expected is not None and expected < log_start:
            self._expected[tp] = log_start
            OFFSET_HOLES.labels(self.group, "deleted").inc()
            log.warning(
                "offsets below the partition's log start were deleted, reading from its start",
                extra={"group": self.group, "tp": str(tp), "missing": f"{expected}-{log_start - 1}"},
            )

    def retry_delay(self) -> float:
        """How long to wait before fetching again after a cut: none for a first sight (the broker
        stores the record within microseconds), then backing off while a hole persists."""
        fetches = max((hole.fetches for hole in self._holes.values()), default=1)
        return 0.0 if fetches <= 1 else min(0.001 * 2 ** (fetches - 2), 0.1)

    def cut(self, records: Records) -> dict[TopicPartition, int]:
        """Cut each partition's records at its first hole, in place (a partition cut at its first
        record is removed); returns the offset to seek each cut partition back to."""
        seeks: dict[TopicPartition, int] = {}
        for tp, messages in list(records.items()):
            expected = self._expected.get(tp)
            first, last = messages[0].offset, messages[-1].offset
            if (expected is None or first == expected) and last - first == len(messages) - 1:
                self._expected[tp] = last + 1  # the usual case: consecutive from where expected
                self._holes.pop(tp, None)
                continue
            keep = self._first_hole(tp, messages, expected)
            if keep is None:
                self._expected[tp] = last + 1
                continue
            hole_at = messages[keep - 1].offset + 1 if keep else expected
            assert hole_at is not None  # a hole before the first record needs an expected offset
            self._expected[tp] = seeks[tp] = hole_at
            if keep:
                records[tp] = messages[:keep]
            else:
                del records[tp]
        return seeks

    def _first_hole(
        self, tp: TopicPartition, messages: list[ConsumerRecord], expected: int | None
    ) -> int | None:
        """The index of the first record after a hole not accepted yet (None: no such hole)."""
        for index, message in enumerate(messages):
            missing = expected if expected is not None and message.offset > expected else None
            if missing is not None and not self._accepted(tp, missing, message.offset):
                return index
            expected = message.offset + 1
        self._holes.pop(tp, None)
        return None

    def _accepted(self, tp: TopicPartition, missing: int, next_offset: int) -> bool:
        """Whether the hole [missing, next_offset) has lasted long enough to be real."""
        now = self.clock()
        hole = self._holes.get(tp)
        if hole is None or hole.offset != missing:
            self._holes[tp] = _Hole(missing, now)
            OFFSET_HOLES.labels(self.group, "refetched").inc()
            log.debug(
                "fetch skipped an offset, reading again",
                extra={"group": self.group, "tp": str(tp), "offset": missing},
            )
            return False
        hole.fetches += 1
        if hole.fetches < self.min_fetches or now - hole.since < self.grace_s:
            return False
        del self._holes[tp]
        OFFSET_HOLES.labels(self.group, "accepted").inc()
        log.warning(
            "offsets missing from a partition, going on past them",
            extra={
                "group": self.group,
                "tp": str(tp),
                "missing": f"{missing}-{next_offset - 1}",
                "seconds": round(now - hole.since, 1),
                "fetches": hole.fetches,
            },
        )
        return True
