"""The bench's percentiles are nearest-rank: the q-quantile of n samples is the ceil(q * n)-th
smallest, so that a share q of the samples lies at or below it and no more than needed."""

from __future__ import annotations

import random

import pytest

from bench.harness.loadgen import percentile


def test_p99_of_a_hundred_samples_is_the_99th_not_the_slowest() -> None:
    samples = [float(n) for n in range(1, 101)]
    random.Random(3).shuffle(samples)
    assert percentile(samples, 0.99) == 99.0
    assert percentile(samples, 0.50) == 50.0


def test_the_median_of_an_even_count_is_the_lower_middle_sample() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([1.0, 2.0], 0.5) == 1.0


@pytest.mark.parametrize("n", [1, 7, 100, 1000, 4321, 5000])
@pytest.mark.parametrize("q", [0.01, 0.07, 0.5, 0.9, 0.99, 0.999])
def test_exactly_the_share_q_lies_at_or_below_it(n: int, q: float) -> None:
    samples = [float(i) for i in range(n)]
    value = percentile(samples, q)
    assert value is not None
    at_or_below = sum(1 for s in samples if s <= value)
    assert at_or_below >= q * n - 1e-9  # enough samples at or below
    assert at_or_below - 1 < q * n - 1e-9 or at_or_below == 1  # the smallest that is enough


def test_edges() -> None:
    assert percentile([], 0.99) is None
    assert percentile([5.0], 0.0) == 5.0
    assert percentile([5.0, 6.0], 1.0) == 6.0
