"""What the bench writes: a partial run keeps the other benchmarks' figures; the bare end-to-end
counter starts the measured run from zero."""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import with_earlier
from bench.harness.bare_e2e import ArrivalCounter


def test_a_partial_run_keeps_the_other_benchmarks_with_when_they_ran(tmp_path: Path) -> None:
    stored = tmp_path / "latest.json"
    stored.write_text(
        json.dumps(
            {
                "started_at": "2026-12-01T10:00:00+00:00",
                "quick": False,
                "benchmarks": {"router": {"rows": [1]}, "e2e": {"rows": [2]}},
            }
        )
    )
    report = {"started_at": "2026-12-05T10:00:00+00:00", "benchmarks": {"e2e": {"rows": [3]}}}
    merged = with_earlier(report, stored)
    assert merged["benchmarks"]["e2e"] == {"rows": [3]}  # this run's, not the stored one
    assert merged["benchmarks"]["router"] == {
        "started_at": "2026-12-01T10:00:00+00:00",
        "quick": False,
        "rows": [1],
    }
    assert with_earlier(report, tmp_path / "missing.json") == report
    stored.write_text("not json")
    assert with_earlier(report, stored) == report


def test_the_bare_counter_drops_the_warm_ups_samples() -> None:
    counter = ArrivalCounter("127.0.0.1:1", "routing", 10)
    counter.count, counter.samples = 12, [(1.0, {"0": 4.0}), (2.0, {"0": 12.0})]  # the warm-up's
    counter.by_partition = {"0": 12.0}
    assert counter.rebase() == 12
    assert counter.samples == [] and counter.base == 12 and counter.by_partition == {}
    assert counter.total() == 0
