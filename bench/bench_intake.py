"""Intake throughput and latency next to a bare baseline, measured in the same run.

    .venv/bin/python -m bench --only intake [--quick]

Per database (SQLite; PostgreSQL when BENCH_POSTGRES_URL or TEST_POSTGRES_URL is set): the bare
endpoint (bench/harness/bare_intake.py) and the real intake service, each its own uvicorn process
with uvloop on the embedded broker, each driven by the load generator process at a fixed
concurrency of keep-alive connections. They take turns bare, intake, intake, bare, twice (a
quarter of the duration each): the embedded broker gets slower as it fills, and this order puts
neither side on the fuller broker. Reports accepted requests per second and p50 latency (medians
of the turns), p99 (the worst turn), intake's rate as a fraction of the baseline's, and each
server process's CPU time per answered request (median of the turns; steadier than the rates on
a shared machine).
"""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

from bench.harness.procs import (
    bare_intake,
    base_env,
    broker,
    cpu_us_per_item,
    database,
    databases,
    make_key,
    service,
)
from bench.harness.run import Row, loadgen
from shared.auth import Role

CONCURRENCY = 32
# Taking turns (ABBA, twice): the embedded broker slows as it fills, and one process of the same
# code measured over a few seconds moves by +-15 % on this machine.
TURNS = ("bare", "intake", "intake", "bare") * 2


def combine(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """One contender's turns as one result: the median rate and p50 (one disturbed turn does not
    set the figure, for either side), the worst p99, the answers summed; the turns are kept too."""
    p50s = [turn["latency_ms_p50"] for turn in turns if turn["latency_ms_p50"] is not None]
    cpus = [turn["cpu_us_per_request"] for turn in turns if turn.get("cpu_us_per_request") is not None]
    p99s = [turn["latency_ms_p99"] for turn in turns if turn["latency_ms_p99"] is not None]
    statuses: dict[str, int] = {}
    for turn in turns:
        for status, count in turn["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "ok_per_second": round(statistics.median(turn["ok_per_second"] for turn in turns), 1),
        "latency_ms_p50": round(statistics.median(p50s), 2) if p50s else None,
        "latency_ms_p99": max(p99s) if p99s else None,
        "cpu_us_per_request": round(statistics.median(cpus), 1) if cpus else None,
        "statuses": statuses,
        "turns": turns,
    }


def measure(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    duration, warmup = (3.0, 0.5) if quick else (10.0, 1.0)  # duration over all turns; warm-up per turn
    results: dict[str, Any] = {"concurrency": CONCURRENCY, "duration_s": duration}
    rows: list[Row] = []
    with broker(workdir) as kafka:
        for kind in databases():
            with database(kind, workdir) as url:
                env = base_env(kafka.bootstrap, url)
                token = asyncio.run(make_key(url, Role.INTAKE))
                turns: dict[str, list[dict[str, Any]]] = {"bare": [], "intake": []}
                for contender in TURNS:
                    process, port = (
                        bare_intake(env, workdir) if contender == "bare" else service("intake", env, workdir)
                    )
                    try:
                        process.wait_ready(port)
                        bearer = token if contender == "intake" else "none"
                        cpu_before = process.cpu_seconds()
                        summary, _ = loadgen(port, bearer, workdir, duration=duration / 4, warmup=warmup)
                        # The server's CPU per answered request over the turn (warm-up included).
                        summary["cpu_us_per_request"] = cpu_us_per_item(
                            cpu_before, process.cpu_seconds(), summary["ok"]
                        )
                    finally:
                        process.stop()
                    turns[contender].append(summary)
            baseline, real = combine(turns["bare"]), combine(turns["intake"])
            ratio = real["ok_per_second"] / baseline["ok_per_second"] if baseline["ok_per_second"] else None
            results[kind] = {"bare": baseline, "intake": real, "ratio": ratio}
            p99 = real["latency_ms_p99"]
            rows += [
                Row("intake", f"bare baseline ({kind})", baseline["ok_per_second"], "req/s"),
                Row("intake", f"bare p99 ({kind})", baseline["latency_ms_p99"], "ms"),
                Row(
                    "intake",
                    f"accepted ({kind})",
                    real["ok_per_second"],
                    "req/s",
                    ">= 2000",
                    real["ok_per_second"] >= 2000,
                ),
                Row("intake", f"p50 ({kind})", real["latency_ms_p50"], "ms"),
                Row("intake", f"p99 ({kind})", p99, "ms", "< 50", p99 is not None and p99 < 50),
                Row(
                    "intake",
                    f"ratio to bare ({kind})",
                    None if ratio is None else round(ratio, 3),
                    "x",
                    ">= 0.8",
                    ratio is not None and ratio >= 0.8,
                ),
                Row("intake", f"bare CPU per request ({kind})", baseline["cpu_us_per_request"], "µs"),
                Row("intake", f"CPU per request ({kind})", real["cpu_us_per_request"], "µs"),
            ]
            non_2xx = {k: v for k, v in real["statuses"].items() if not k.startswith("2")}
            if non_2xx:
                print(f"intake ({kind}): answers other than 2xx: {non_2xx}")
    return results, rows
