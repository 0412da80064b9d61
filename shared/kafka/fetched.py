"""One batch as the consumer loop fetched it, decoded at once or a slice at a time.

The loop decodes the batch in hand before handling it. Under a backlog it also fetches the next
batch early; with an :class:`~shared.overlap.IdleWork` queue from the handler, that batch is
decoded in slices while the current batch waits on the database and the broker (~9 µs an event,
a sixth of a batch's waits at 2,000 events), and whatever is left is decoded in its own turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from shared.events import EventEnvelope, TicketSnapshot
from shared.frozen import frozen

# Records per slice of decoding done as idle work: about a millisecond.
DECODE_SLICE = 128


@frozen
class ConsumedEvent:
    envelope: EventEnvelope
    topic: str
    partition: int
    offset: int
    # A ticket event's payload as validated when decoded (read-only: the handler may reuse it).
    ticket: TicketSnapshot | None = None
    # The record as consumed: what the dead-letter topic gets (same bytes, key and headers).
    record: ConsumerRecord | None = None

    def as_record(self) -> ConsumerRecord:
        """The consumed record; for an event made in memory (tests, tools), one built from it."""
        if self.record is not None:
            return self.record
        return ConsumerRecord(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            timestamp=0,
            timestamp_type=0,
            key=self.envelope.ticket_key.encode(),
            value=self.envelope.to_bytes(),
            checksum=None,
            serialized_key_size=-1,
            serialized_value_size=-1,
            headers=(),
        )


@dataclass(slots=True, eq=False)
class FetchedBatch:
    """Records of one fetch, the events decoded from them and the undecodable ones (with why)."""

    records: dict[TopicPartition, list[ConsumerRecord]]
    epoch: int  # the assignment it was fetched under
    seek_marks: dict[TopicPartition, int] = field(default_factory=dict)  # its partitions' seeks then
    revocations: int = 0  # the loop's revocations then
    # (topic, partition, offset) of the records through (handled or dead-lettered) while the rest
    # waits; only a batch handled in parts keeps any.
    done: set[tuple[str, int, int]] = field(default_factory=set)
    events: list[ConsumedEvent] = field(default_factory=list)
    undecodable: list[tuple[ConsumerRecord, str]] = field(default_factory=list)
    decode_s: float = 0.0  # time spent decoding it, wherever that happened
    _pending: list[tuple[TopicPartition, ConsumerRecord]] = field(init=False)
    _decoded: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._pending = [(tp, message) for tp, messages in self.records.items() for message in messages]

    @property
    def size(self) -> int:
        return len(self._pending)

    @property
    def decoded(self) -> bool:
        return self._decoded == len(self._pending)

    def decode(self, count: int | None = None) -> None:
        """Decode the next ``count`` records (all that are left when None), in fetch order."""
        started = time.perf_counter()
        end = len(self._pending) if count is None else min(self._decoded + count, len(self._pending))
        for tp, message in self._pending[self._decoded : end]:
            try:
                envelope, ticket = EventEnvelope.decode(message.value or b"")
            except (ValueError, ValidationError) as exc:
                self.undecodable.append((message, f"undecodable: {short_error(exc)}"))
                continue
            event = ConsumedEvent(envelope, tp.topic, tp.partition, message.offset, ticket, message)
            self.events.append(event)
        self._decoded = end
        self.decode_s += time.perf_counter() - started

    def decode_steps(self, then: Callable[[], object]) -> list[Callable[[], object]]:
        """The decoding as idle-work steps of ``DECODE_SLICE`` records, then ``then``."""
        slices = -(-(len(self._pending) - self._decoded) // DECODE_SLICE)
        return [lambda: self.decode(DECODE_SLICE) for _ in range(slices)] + [then]


def short_error(exc: BaseException, limit: int = 500) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."
