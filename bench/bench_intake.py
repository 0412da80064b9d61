"""Intake throughput and latency next to a bare baseline, measured in the same run.

    .venv/bin/python -m bench --only intake [--quick]

Per database (SQLite; PostgreSQL when BENCH_POSTGRES_URL or TEST_POSTGRES_URL is set): the bare
endpoint (bench/harness/bare_intake.py) and then the real intake service, each its own uvicorn
process with uvloop on the embedded broker, each driven by the load generator process at a fixed
concurrency of keep-alive connections. Reports accepted requests per second, p50/p99 latency and
intake's rate as a fraction of the baseline's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bench.harness.procs import bare_intake, base_env, broker, database, databases, make_key, service
from bench.harness.run import Row, loadgen
from shared.auth import Role

CONCURRENCY = 32


def measure(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    duration, warmup = (3.0, 1.0) if quick else (10.0, 2.0)
    results: dict[str, Any] = {"concurrency": CONCURRENCY, "duration_s": duration}
    rows: list[Row] = []
    with broker(workdir) as kafka:
        for kind in databases():
            with database(kind, workdir) as url:
                env = base_env(kafka.bootstrap, url)
                bare, port = bare_intake(env, workdir)
                try:
                    bare.wait_ready(port)
                    baseline, _ = loadgen(port, "none", workdir, duration=duration, warmup=warmup)
                finally:
                    bare.stop()
                token = asyncio.run(make_key(url, Role.INTAKE))
                intake, port = service("intake", env, workdir)
                try:
                    intake.wait_ready(port)
                    real, _ = loadgen(port, token, workdir, duration=duration, warmup=warmup)
                finally:
                    intake.stop()
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
            ]
            non_2xx = {k: v for k, v in real["statuses"].items() if not k.startswith("2")}
            if non_2xx:
                print(f"intake ({kind}): answers other than 2xx: {non_2xx}")
    return results, rows
