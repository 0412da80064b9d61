"""The machine's speed when a benchmark ran: a fixed pure-Python workload, timed just before it.

This shared 2-core VM runs the same code a third slower in some hours than in others (README,
Performance: the router's own figures moved from 4,877 to 3,258 tickets/s within two hours, code
unchanged). Every figure in latest.json is measured, none normalised; each benchmark carries the
time this workload took before it, so that two runs are compared only when their machine was.
"""

from __future__ import annotations

import time

REPEATS = 5
ITEMS = 200_000


def workload(items: int = ITEMS) -> int:
    """Small dicts, strings and arithmetic: the kind of work the services' Python does."""
    total = 0
    for i in range(items):
        row: dict[str, str | int] = {"key": i, "text": str(i)}
        total += len(str(row["text"])) + i % 7
    return total


def reference_ms(repeats: int = REPEATS, items: int = ITEMS) -> dict[str, float]:
    """The best of ``repeats`` runs of :func:`workload`, as process CPU and wall time in ms (the
    best: a run that another process interrupted measures that process, not this machine)."""
    best_cpu = best_wall = float("inf")
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        workload(items)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return {"cpu_ms": round(best_cpu * 1000, 1), "wall_ms": round(best_wall * 1000, 1)}
