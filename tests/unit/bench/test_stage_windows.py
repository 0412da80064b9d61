"""The end-to-end bench's per-window stage figures: consumer batches from /metrics counters and
process CPU, as differences between successive samples."""

from __future__ import annotations

from bench.harness.stages import Sample, batch_totals, describe, stage_windows

METRICS = """\
consumer_batch_seconds_count{group="router-x"} 10.0
consumer_batch_seconds_sum{group="router-x"} 0.25
consumer_messages_total{group="router-x",outcome="processed"} 150.0
consumer_messages_total{group="router-x",outcome="dead_lettered"} 2.0
consumer_batch_seconds_count{group="metrics-x"} 99.0
"""


def test_batch_totals_read_one_groups_counters() -> None:
    assert batch_totals(METRICS, "router-x") == {"batches": 10.0, "seconds": 0.25, "events": 150.0}
    assert batch_totals(METRICS, "absent") == {"batches": 0.0, "seconds": 0.0, "events": 0.0}


def test_windows_are_differences_between_samples() -> None:
    samples = [
        Sample(100.0, {"router": 1.0, "broker": None}, {"router": {"batches": 0, "seconds": 0, "events": 0}}),
        Sample(
            110.0,
            {"router": 5.0, "broker": 2.0},
            {"router": {"batches": 100, "seconds": 3.0, "events": 1500}},
        ),
        Sample(
            120.0,
            {"router": 8.0, "broker": 4.0},
            {"router": {"batches": 100, "seconds": 3.0, "events": 1500}},
        ),
    ]
    first, second = stage_windows(samples)
    assert first["from_s"] == 0.0 and second["from_s"] == 10.0
    assert first["cpu_percent"] == {"router": 40.0, "broker": None}  # unknown before: no figure
    assert second["cpu_percent"] == {"router": 30.0, "broker": 20.0}
    assert first["batches"]["router"] == {"batches": 100, "mean_events": 15.0, "mean_ms": 30.0}
    assert second["batches"]["router"] == {"batches": 0, "mean_events": None, "mean_ms": None}
    assert describe(first) == "  from   0.0 s: CPU router 40%; batches router 15.0 ev/30.0 ms"


def test_no_samples_no_windows() -> None:
    assert stage_windows([]) == []
