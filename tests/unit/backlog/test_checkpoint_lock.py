"""A checkpoint holds the state's lock only while it copies the state: the compression, most of
its time at a million open tickets, runs while ingest and scrapes go on."""

from __future__ import annotations

import threading

import pytest

from services.metrics.backlog import BacklogState, checkpoint
from services.metrics.ingest import consumer
from services.metrics.ingest.consumer import Shard
from tests.unit.backlog.helpers import at, envelope, make_state, scrape


def _state() -> BacklogState:
    state = BacklogState()
    for i in range(50):
        state.apply(envelope(make_state(f"z:{i}", i, team="billing", routed=i + 1), i + 1), at(i + 1))
    return state


def _watch_seal(monkeypatch: pytest.MonkeyPatch, state: BacklogState, module: object) -> list[bool]:
    """Patch ``module.seal`` to record whether another thread could take the lock meanwhile."""
    free: list[bool] = []
    real = checkpoint.seal

    def seal(body: bytes) -> bytes:
        def other_thread() -> None:
            got = state.lock.acquire(timeout=1)
            free.append(got)
            if got:
                state.lock.release()

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        return real(body)

    monkeypatch.setattr(module, "seal", seal)
    return free


def test_the_ingest_checkpoint_compresses_with_the_state_unlocked(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state()
    shard = Shard(partition=0, state=state, next_offsets={"tickets:0": 50}, pending=50)
    free = _watch_seal(monkeypatch, state, consumer)
    data, offsets, pending = consumer._encode(shard)
    assert free == [True]
    assert (offsets, pending) == ({"tickets:0": 50}, 50)
    assert scrape(checkpoint.load(data)) == scrape(state)


def test_to_checkpoint_compresses_with_the_state_unlocked(monkeypatch: pytest.MonkeyPatch) -> None:
    state = _state()
    free = _watch_seal(monkeypatch, state, checkpoint)
    data = state.to_checkpoint()
    assert free == [True]
    assert scrape(BacklogState.from_checkpoint(data)) == scrape(state)
