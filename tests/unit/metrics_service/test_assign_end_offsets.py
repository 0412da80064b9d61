"""The check of restored offsets against the partitions' ends is retried when the broker does not
answer it, not skipped: skipped, a checkpoint of an earlier incarnation of the topic went unnoticed."""

from __future__ import annotations

from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from services.metrics.backlog import BacklogState
from services.metrics.ingest.consumer import BacklogIngest, Shard

TICKETS, ROUTING = TopicPartition("tickets", 0), TopicPartition("routing", 0)


async def test_a_failing_end_offsets_is_retried_before_the_offsets_are_sought(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ingest = BacklogIngest(cast(Any, None), retry_s=0.01)

    async def load(p: int) -> Shard:
        # A checkpoint of the topics' previous incarnation: offsets past the new partitions' ends.
        return Shard(p, BacklogState(), {"tickets:0": 100, "routing:0": 100}, persisted=True)

    calls = 0

    async def end_offsets(tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        nonlocal calls
        calls += 1
        if calls < 3:  # the broker is briefly away (a leader moving, a dropped connection)
            raise KafkaConnectionError("connection reset")
        return {tp: 3 for tp in tps}

    monkeypatch.setattr(ingest, "_load_shard", load)
    ingest.end_offsets = end_offsets
    seek = await ingest.on_assign({TICKETS, ROUTING})
    # Sought to 100, the consumer resets to the start (auto_offset_reset) and the handler skips
    # every new event below 100 as applied already, its lag 0: caught up, and the tickets uncounted.
    assert seek == {TICKETS: 0, ROUTING: 0}
    assert calls == 3
    assert not ingest.shards[0].persisted  # the next checkpoint records the new offsets
