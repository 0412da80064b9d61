"""End to end: from intake's 202 to the metrics service counting the routed ticket.

    .venv/bin/python -m bench --only e2e [--quick]

The three services run as processes on the embedded broker and one database (PostgreSQL when
BENCH_POSTGRES_URL or TEST_POSTGRES_URL is set, else SQLite) with the 200-rule rule set. The
load generator posts tickets at a sustained rate (500/s for 60 s; 10 s with --quick) and records
when each 202 arrived; meanwhile this process polls the metrics service's /metrics every few
milliseconds for the sum of ``tickets_routed_total``. Latency is attributed by counting: the
i-th accepted ticket's latency is the time the sum first reached i+1 minus its 202 time. The run
starts once a dozen warm-up tickets went all the way through (consumer groups joined), so it
measures the pipeline in service, not its start-up; the warm-up time is reported beside it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.bench_router import store_rules
from bench.harness.loadgen import percentile
from bench.harness.procs import base_env, broker, database, databases, make_key, service
from bench.harness.run import Row, loadgen
from shared.auth import Role

RATE = float(os.environ.get("BENCH_E2E_RATE", "500"))
TARGET_P99_MS = 250.0
# The probe asks for the one series it reads (name[] filter) and pauses between scrapes, so that
# measuring costs the services under test little CPU; a change is dated to the midpoint of the
# scrape that first saw it, so the pause can only make latencies look longer, never shorter.
POLL_S = 0.01
PROBE = "/metrics?name[]=tickets_routed_total"


def routed_sum(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("tickets_routed_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Poller(threading.Thread):
    """Samples (monotonic time, routed sum) whenever the sum changes, until stopped."""

    def __init__(self, url: str, base: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.base = base  # counted before the measured run (the warm-up): not attributed
        self.samples: list[tuple[float, float]] = []
        self.stop_at = float("inf")
        self.scrape_ms: list[float] = []

    def run(self) -> None:
        last = -1.0
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < self.stop_at:
                began = time.monotonic()
                try:
                    value = routed_sum(client.get(self.url).text) - self.base
                except httpx.HTTPError:
                    time.sleep(POLL_S)
                    continue
                now = time.monotonic()
                self.scrape_ms.append((now - began) * 1000)
                if value != last:
                    # The value was true at some point during the scrape: take its midpoint.
                    self.samples.append(((began + now) / 2, value))
                    last = value
                time.sleep(POLL_S)


def warm_up(
    intake_port: int, probe_url: str, token: str, tickets: int = 12, timeout_s: float = 120.0
) -> float:
    """Post a few tickets and wait until the metrics service counts them all, so the measured run
    starts on a flowing pipeline: every consumer group has its partitions (a rebalance on the
    embedded broker takes seconds) and every connection is open. Returns the routed sum then."""
    deadline = time.monotonic() + timeout_s
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(timeout=5, headers={"Authorization": f"Bearer {token}"}) as client:
        for index in range(tickets):
            body = {"external_id": f"warm-up-{tag}-{index}", "subject": "Warm-up", "description": "Warm-up"}
            client.post(f"http://127.0.0.1:{intake_port}/v1/tickets", json=body).raise_for_status()
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                value = routed_sum(client.get(probe_url).text)
                if value >= tickets:
                    return value
            time.sleep(0.05)
    raise RuntimeError(f"the pipeline did not count {tickets} warm-up tickets within {timeout_s:.0f} s")


def attribute(accepted: list[float], samples: list[tuple[float, float]]) -> list[float]:
    """Latency (s) of the i-th accepted ticket: first time the count reached i+1, minus its 202."""
    counts = [count for _, count in samples]
    latencies = []
    for index, t202 in enumerate(sorted(accepted)):
        position = bisect.bisect_left(counts, index + 1)
        if position == len(counts):
            break  # never counted within the wait
        latencies.append(samples[position][0] - t202)
    return latencies


def measure(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    duration = 10.0 if quick else float(os.environ.get("BENCH_E2E_SECONDS", "60"))
    kind = databases()[-1]  # PostgreSQL when configured: the production database
    with broker(workdir) as kafka, database(kind, workdir) as url:
        asyncio.run(store_rules(url, 200))
        token = asyncio.run(make_key(url, Role.INTAKE))
        suffix = uuid.uuid4().hex[:6]
        env = {
            **base_env(kafka.bootstrap, url),
            "ROUTER_GROUP_ID": f"router-{suffix}",
            "METRICS_GROUP_ID": f"metrics-{suffix}",
        }
        started = [service(name, env, workdir) for name in ("router", "metrics", "intake")]
        try:
            for process, port in started:
                process.wait_ready(port)
            metrics_port, intake_port = started[1][1], started[2][1]
            probe_url = f"http://127.0.0.1:{metrics_port}{PROBE}"
            warming = time.monotonic()
            base = warm_up(intake_port, probe_url, token)
            warm_up_s = time.monotonic() - warming
            poller = Poller(probe_url, base)
            poller.start()
            summary, accepted = loadgen(
                intake_port, token, workdir, duration=duration, warmup=0.0, rate=RATE, times=True
            )
            # Wait until every accepted ticket was counted (bounded).
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (
                not poller.samples or poller.samples[-1][1] < len(accepted)
            ):
                time.sleep(0.05)
            poller.stop_at = time.monotonic()
            poller.join()
        finally:
            for process, _ in reversed(started):
                process.stop()
    latencies_ms = [x * 1000 for x in attribute(accepted, poller.samples)]
    counted = int(poller.samples[-1][1]) if poller.samples else 0
    p50, p99 = percentile(latencies_ms, 0.5), percentile(latencies_ms, 0.99)
    result = {
        "database": kind,
        "target_rate": RATE,
        "seconds": duration,
        "loadgen": summary,
        "accepted": len(accepted),
        "counted": counted,
        "attributed": len(latencies_ms),
        "latency_ms_p50": p50,
        "latency_ms_p99": p99,
        "latency_ms_max": max(latencies_ms) if latencies_ms else None,
        "scrape_ms_median": percentile(poller.scrape_ms, 0.5),
        "warm_up_s": round(warm_up_s, 1),
    }
    achieved = summary["ok_per_second"]
    rows = [
        Row(
            "e2e", f"achieved rate ({kind})", achieved, "tickets/s", f">= {RATE:.0f}", achieved >= 0.98 * RATE
        ),
        Row(
            "e2e",
            f"counted / accepted ({kind})",
            counted,
            f"of {len(accepted)}",
            "all",
            counted == len(accepted),
        ),
        Row("e2e", f"202 -> counted p50 ({kind})", None if p50 is None else round(p50, 1), "ms"),
        Row(
            "e2e",
            f"202 -> counted p99 ({kind})",
            None if p99 is None else round(p99, 1),
            "ms",
            f"< {TARGET_P99_MS:.0f}",
            p99 is not None and p99 < TARGET_P99_MS,
        ),
        Row("e2e", f"intake p99 at {RATE:.0f}/s ({kind})", summary["latency_ms_p99"], "ms"),
    ]
    return result, rows
