"""metrics_checkpoint_timestamp_seconds says how far back a crash makes a shard replay (the
dashboard's "Metrics checkpoint age" charts its oldest per instance): a quiet shard, whose row
already holds all it applied, is current; a shard whose writes fail is not."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from services.metrics.backlog import BacklogState
from services.metrics.ingest.consumer import CHECKPOINT_TIME, BacklogIngest, Shard


def checkpoint_time(partition: int) -> float | None:
    return REGISTRY.get_sample_value("metrics_checkpoint_timestamp_seconds", {"partition": str(partition)})


def _no_database() -> Any:
    raise ConnectionError("database unreachable")


async def test_a_quiet_shard_has_a_current_checkpoint() -> None:
    # Checkpointed an hour ago, no event since: the periodic pass writes nothing (nothing is
    # pending), and the row still holds the whole shard. Its age grew from that write on, so a
    # quiet partition's age read as an hour of replay, and as checkpoints failing.
    ingest = BacklogIngest(cast(Any, _no_database))
    ingest.shards[41] = Shard(41, BacklogState(), {"routing:41": 10}, pending=0, persisted=True)
    CHECKPOINT_TIME.labels("41").set(time.time() - 3600)
    before = time.time()
    await ingest.checkpoint()  # no database needed: nothing to write
    value = checkpoint_time(41)
    assert value is not None and value >= before


async def test_a_shard_whose_checkpoint_fails_keeps_its_age() -> None:
    ingest = BacklogIngest(cast(Any, _no_database))
    ingest.shards[42] = Shard(42, BacklogState(), {"routing:42": 10}, pending=3, persisted=True)
    old = time.time() - 3600
    CHECKPOINT_TIME.labels("42").set(old)
    with pytest.raises(ConnectionError):
        await ingest.checkpoint()
    assert checkpoint_time(42) == old
