"""aiokafka runs a rebalance beside the consumer loop: ``on_revoke`` and ``on_assign`` may run
while a batch is in the loop (retried, halved, being committed). The metrics ingest relies on its
batch handler never yielding to the event loop, so a callback sees a batch applied wholly or not
at all, never a shard half-applied with offsets behind its state."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest

from services.metrics.ingest.consumer import BacklogIngest
from tests.unit.metrics_service.test_shard_clock import Clock, answered_in_time, batch, ingest_of


def run_without_yielding(call: Coroutine[Any, Any, None]) -> None:
    """Run ``call`` to its end in one step: StopIteration at the first send, else it awaited."""
    with pytest.raises(StopIteration):
        call.send(None)


def test_the_batch_handler_applies_a_batch_without_yielding() -> None:
    ingest: BacklogIngest = ingest_of(Clock(3600.0), 0)
    run_without_yielding(ingest(batch(0, answered_in_time())))
    assert ingest.shards[0].next_offsets == {"routing:0": len(answered_in_time())}


def test_the_batch_handler_skips_a_revoked_shards_events_without_yielding() -> None:
    ingest: BacklogIngest = ingest_of(Clock(3600.0), 0)
    # Partition 1 was revoked while its batch waited for a retry: its new owner replays it.
    run_without_yielding(ingest(batch(1, answered_in_time()) + batch(0, answered_in_time())))
    assert set(ingest.shards) == {0}
    assert ingest.shards[0].next_offsets == {"routing:0": len(answered_in_time())}
