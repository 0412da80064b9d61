"""A revocation must answer within the group's rebalance timeout (aiokafka's default: the session
timeout, 10 s here): a member whose listener outlives it is thrown out of the group, and the
rebalance starts over. Slow checkpoint writes must not hold it there."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import pytest
from aiokafka import TopicPartition

from services.metrics.backlog import BacklogState
from services.metrics.ingest.consumer import BacklogIngest, Shard

WRITE_S = 0.4  # one shard's checkpoint write (a slow database)


def _ingest(monkeypatch: pytest.MonkeyPatch, written: list[int]) -> BacklogIngest:
    ingest = BacklogIngest(cast(Any, None))
    ingest.revoke_budget_s = 1.0
    for p in range(4):
        ingest.shards[p] = Shard(p, BacklogState(), {}, pending=1)

    async def checkpoint(shard: Shard) -> None:
        await asyncio.sleep(WRITE_S)
        shard.pending, shard.persisted = 0, True
        written.append(shard.partition)

    monkeypatch.setattr(ingest, "_checkpoint", checkpoint)
    return ingest


async def test_a_revocation_waits_for_one_shard_of_a_periodic_checkpoint_not_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written: list[int] = []
    ingest = _ingest(monkeypatch, written)
    periodic = asyncio.create_task(ingest.checkpoint())  # four shards: 1.6 s holding the lock
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await ingest.on_revoke({TopicPartition("tickets", 3), TopicPartition("routing", 3)})
    took = time.monotonic() - started
    # The write in hand (shard 0), then the revoked shard's own: not shards 1 and 2 first.
    assert took < 3 * WRITE_S, took
    assert written[:2] == [0, 3] and 3 in ingest._parked and 3 not in ingest.shards
    await periodic
    assert sorted(written) == [0, 1, 2, 3]  # the periodic one went on, without the revoked shard


async def test_a_revocation_gives_up_its_checkpoints_at_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[int] = []
    ingest = _ingest(monkeypatch, written)
    started = time.monotonic()
    await ingest.on_revoke({TopicPartition("tickets", p) for p in range(4)})
    took = time.monotonic() - started
    assert took < 1.0 + WRITE_S, took  # the budget, not 4 x 0.4 s
    # Written in time: parked for reuse. The rest: dropped, their new owner replays from the
    # previous checkpoint (nothing is lost but replay time).
    assert written == [0, 1] and set(ingest._parked) == {0, 1} and not ingest.shards
