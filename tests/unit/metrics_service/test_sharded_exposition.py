"""Shards merged by one collector == the naive ground truth of the whole stream."""

from __future__ import annotations

import math
import random
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.metrics.backlog import BacklogCollector, BacklogState
from services.metrics.backlog.views import summary
from tests.integration.metrics.truth import Key, Stream, Truth


class Shards(BacklogCollector):
    def __init__(self, states: list[BacklogState], now: datetime) -> None:
        super().__init__(BacklogState(), clock=lambda: now)
        self.shards = states

    def states(self) -> list[BacklogState]:
        return self.shards


def scrape(collector: BacklogCollector) -> dict[Key, float]:
    registry = CollectorRegistry()
    registry.register(collector)
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def assert_matches(got: dict[Key, float], exp: dict[Key, float]) -> None:
    assert set(got) == set(exp), set(got) ^ set(exp)
    for key, value in exp.items():
        if key[0].endswith(("_sum", "_gsum")):  # float sums: order of addition differs
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key
        else:
            assert got[key] == value, key


@pytest.mark.parametrize("seed", range(4))
def test_partition_shards_merge_to_the_ground_truth(seed: int) -> None:
    t0 = datetime(2024, 6, 1, 12, tzinfo=UTC)
    stream, truth = Stream(t0, random.Random(seed)), Truth()
    shards = [BacklogState() for _ in range(3)]
    now = t0
    for _ in range(700):
        for env in stream.step():
            shards[zlib.crc32(env.ticket_key.encode()) % 3].apply(env, now)
            truth.apply(env, round(now.timestamp() * 1000))
    assert truth.recent_sample_counts() <= 100  # every Erlang input sample is still held
    at = t0 + timedelta(minutes=5)
    got = scrape(Shards(shards, at))
    assert_matches(got, truth.expected(round(at.timestamp() * 1000)))
    assert math.fsum(v for k, v in got.items() if k[0] == "ticket_backlog_open") == sum(
        s.n_open for s in shards
    )
    merged = summary(Shards(shards, at).snapshot())
    assert merged["open"] == sum(s.n_open for s in shards)
    assert merged["teams"]["billing"]["open"] == sum(
        v for k, v in got.items() if k[0] == "ticket_backlog_open" and ("team", "billing") in k[1]
    )


def test_checkpointed_shards_merge_like_the_live_ones() -> None:
    t0 = datetime(2024, 6, 1, 12, tzinfo=UTC)
    stream = Stream(t0, random.Random(99))
    shards = [BacklogState() for _ in range(2)]
    for _ in range(300):
        for env in stream.step():
            shards[zlib.crc32(env.ticket_key.encode()) % 2].apply(env, t0)
    restored = [BacklogState.from_checkpoint(s.to_checkpoint()) for s in shards]
    at = t0 + timedelta(hours=30)  # far enough to move ages, deadlines and the flow window
    assert scrape(Shards(restored, at)) == scrape(Shards(shards, at))
