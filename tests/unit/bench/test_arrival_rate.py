"""The router bench's rate: batches of any size, published at the same pace, give the same rate."""

from __future__ import annotations

import random

import pytest

from bench.bench_router import arrival_rate


def staircase(batch: int, every_ms: int, total: int, jitter_ms: int = 0) -> list[int]:
    """``total`` messages published ``batch`` at a time every ``every_ms``, from t = 1000 ms."""
    rng = random.Random(batch)
    return [1000 + (i // batch) * every_ms + rng.randint(0, jitter_ms) for i in range(total)]


@pytest.mark.parametrize(("batch", "every_ms"), [(1, 1), (10, 2), (500, 125), (1000, 250), (2000, 500)])
def test_the_rate_does_not_depend_on_the_batch_size(batch: int, every_ms: int) -> None:
    # (count - 1) over the first-to-last span gave 4,200 for batches of 500 here, 5,000 for 2,000.
    expected = batch / every_ms * 1000
    assert arrival_rate(staircase(batch, every_ms, total=10_000)) == pytest.approx(expected, rel=0.001)


def test_jitter_within_a_batch_and_arrival_order_do_not_matter() -> None:
    stamps = staircase(500, every_ms=125, total=10_000, jitter_ms=5)
    random.Random(1).shuffle(stamps)  # partitions arrive interleaved
    assert arrival_rate(stamps) == pytest.approx(4000.0, rel=0.02)


def test_too_few_or_simultaneous_arrivals_give_no_rate() -> None:
    assert arrival_rate([]) is None
    assert arrival_rate([5]) is None
    assert arrival_rate([7, 7, 7]) is None
