"""What the bench writes: a partial run keeps the other benchmarks' figures; each benchmark carries
the machine's reference time taken before it; the bare end-to-end counter starts the measured run
from zero."""

from __future__ import annotations

import json
from pathlib import Path

from bench.__main__ import run_benchmark, with_earlier
from bench.harness.bare_e2e import ArrivalCounter
from bench.harness.reference import reference_ms
from bench.harness.run import Row


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


def test_each_benchmark_carries_the_machine_reference_taken_before_it(tmp_path: Path) -> None:
    order: list[str] = []

    def reference() -> dict[str, float]:
        order.append("reference")
        return {"cpu_ms": 40.0, "wall_ms": 41.5}

    def measure(workdir: Path, quick: bool) -> tuple[dict[str, object], list[Row]]:
        order.append("measure")
        return {"figure": 1}, [Row("router", "routed", 5000.0, "tickets/s")]

    result, rows, ok = run_benchmark("router", measure, tmp_path, True, reference)
    assert ok and order == ["reference", "measure"]
    assert result["machine_reference_ms"] == {"cpu_ms": 40.0, "wall_ms": 41.5}
    assert result["figure"] == 1 and "elapsed_s" in result
    assert [(r.bench, r.value, r.unit) for r in rows] == [
        ("router", 5000.0, "tickets/s"),
        ("router", 41.5, "ms"),
    ]

    def failing(workdir: Path, quick: bool) -> tuple[dict[str, object], list[Row]]:
        raise RuntimeError("broker did not start")

    result, rows, ok = run_benchmark("e2e", failing, tmp_path, True, reference)
    assert not ok and rows == []
    assert "broker did not start" in str(result["error"])
    assert result["machine_reference_ms"]["wall_ms"] == 41.5  # kept: a failed run's machine too


def test_the_reference_workload_reports_its_best_cpu_and_wall_time() -> None:
    measured = reference_ms(repeats=2, items=20_000)
    assert set(measured) == {"cpu_ms", "wall_ms"}
    assert 0 < measured["cpu_ms"] < 10_000 and 0 < measured["wall_ms"] < 10_000
