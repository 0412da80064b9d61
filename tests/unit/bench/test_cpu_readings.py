"""The bench's CPU readings: per process and for the whole machine, combined per contender."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.bench_intake import CPU_KEYS, combine
from bench.harness.procs import machine_busy_seconds, pid_cpu_seconds


def _spin(seconds: float) -> None:
    """Busy for ``seconds`` of this process's CPU time (not wall time: on a shared machine 0.3 s
    of wall time can hold less than 0.2 s of CPU)."""
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def test_a_process_and_the_machine_are_charged_for_a_busy_core() -> None:
    process, machine = pid_cpu_seconds(os.getpid()), machine_busy_seconds()
    assert process is not None
    _spin(0.3)
    own = pid_cpu_seconds(os.getpid())
    assert own is not None and own - process >= 0.2
    assert machine_busy_seconds() - machine >= 0.2


def test_a_process_that_is_gone_has_no_reading() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert pid_cpu_seconds(done.pid) is None


def test_each_part_of_the_stack_is_the_median_of_the_turns() -> None:
    turns = [
        {"ok_per_second": r, "latency_ms_p50": 1.0, "latency_ms_p99": 2.0, "ok": 10, **parts}
        for r, parts in (
            (100.0, {"cpu_us_per_request": 300.0, "database_cpu_us_per_request": 40.0}),
            (110.0, {"cpu_us_per_request": 310.0, "database_cpu_us_per_request": None}),
            (120.0, {"cpu_us_per_request": 900.0, "database_cpu_us_per_request": 50.0}),
        )
    ]
    combined = combine(turns)
    assert combined["cpu_us_per_request"] == 310.0  # one disturbed turn does not set the figure
    assert combined["database_cpu_us_per_request"] == 45.0  # of the turns that had a reading
    assert combined[CPU_KEYS["broker"]] is None  # no turn had one
