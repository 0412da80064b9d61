"""End to end: from intake's 202 to the metrics service counting the routed ticket.

    .venv/bin/python -m bench --only e2e [--quick]

The three services run as processes on the embedded broker and one database (PostgreSQL when
BENCH_POSTGRES_URL or TEST_POSTGRES_URL is set, else SQLite) with the 200-rule rule set. The
load generator posts signed webhook deliveries (GitHub ``issues.opened``, the real payload; intake
verifies, deduplicates and adapts each) at a sustained rate (500/s for 60 s; 10 s with --quick)
and records when each delivery's 202 arrived (BENCH_E2E_WEBHOOK=native posts the native adapter's
deliveries, ``none`` native tickets to ``POST /v1/tickets``); meanwhile this process polls the
metrics service's /metrics every few milliseconds for ``tickets_routed_total`` per partition.
Latency is attributed by counting within each partition, whose order the pipeline keeps (intake
produces a ticket to the partition of its key, the router answers on the same partition of its
topic, and the metrics service counts it under that partition): the i-th ticket accepted for
partition p is counted when p's count first reaches i. Counted over all partitions together, a
ticket delayed in one partition would lend its delay to tickets of others and keep its own hidden.
A ticket accepted but never counted within the wait ranks above every counted one: a percentile
that falls among those is reported as unknown (None, target not met), not taken over the counted
tickets alone. The run starts once a dozen warm-up tickets went all the way through (consumer
groups joined), so it measures the pipeline in service, not its start-up; the warm-up time is
reported beside it.

Both pipelines run twice: with the product's defaults, and with one partition per topic, a 10 ms
linger on intake's producer and a 10 ms consumer fetch wait (:data:`DEPLOYMENTS`;
BENCH_E2E_PARTITIONS and BENCH_E2E_LINGER_MS run one deployment of your own instead).
"""

from __future__ import annotations

import asyncio
import bisect
import math
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.bench_intake import UNBOUNDED_RATE_LIMIT
from bench.bench_router import store_rules
from bench.harness.bare_e2e import await_all, run_bare, warm_up
from bench.harness.loadgen import percentile
from bench.harness.procs import (
    Process,
    base_env,
    broker,
    database,
    databases,
    make_key,
    make_source,
    pid_cpu_seconds,
    postgres_cpu_seconds,
    service,
)
from bench.harness.run import Row, loadgen
from bench.harness.stages import StageSampler, batch_totals, describe
from bench.harness.webhooks import MODES, SOURCES
from shared.auth import Role
from shared.kafka.partitioner import partition_of as producer_partition

RATE = float(os.environ.get("BENCH_E2E_RATE", "500"))


def webhook_mode() -> str | None:
    """What the load generator posts (BENCH_E2E_WEBHOOK): a webhook mode of
    bench/harness/webhooks.py, or ``none`` for native tickets. The issue's clock starts at a
    webhook accepted, so GitHub deliveries by default."""
    mode = os.environ.get("BENCH_E2E_WEBHOOK", "github").strip().lower()
    if mode == "none":
        return None
    if mode not in MODES:
        raise ValueError(f"BENCH_E2E_WEBHOOK: unknown mode {mode!r}; choose from {', '.join(MODES)} or none")
    return mode


@dataclass(frozen=True)
class Deployment:
    """What both pipelines of one run are deployed with: partitions per topic, intake's linger,
    the consumers' fetch wait (None: the product's default)."""

    label: str
    partitions: int
    intake_linger_ms: int | None = None
    fetch_max_wait_ms: int | None = None

    def env(self) -> dict[str, str]:
        env = {"TOPIC_PARTITIONS": str(self.partitions)}
        if self.intake_linger_ms is not None:
            env["INTAKE_PRODUCER_LINGER_MS"] = str(self.intake_linger_ms)
        if self.fetch_max_wait_ms is not None:
            env["CONSUMER_FETCH_MAX_WAIT_MS"] = str(self.fetch_max_wait_ms)
        return env


# The product's defaults, then a deployment sized for one instance of each service on the embedded
# broker. Its fetch cost grows with the batches stored per partition (README, Performance): one
# partition and a 10 ms linger on intake's producer store ~5 tickets per batch instead of ~1, and
# that leaves the broker room for twice the fetches of a 10 ms fetch wait (it does not answer a
# waiting fetch when a message arrives, it looks again after sleeping part of the wait).
DEPLOYMENTS = (
    Deployment("defaults: 6 partitions", 6),
    Deployment("1 partition, linger 10 ms, fetch wait 10 ms", 1, 10, 10),
)


def deployments() -> tuple[Deployment, ...]:
    """BENCH_E2E_PARTITIONS (optionally with BENCH_E2E_LINGER_MS, and CONSUMER_FETCH_MAX_WAIT_MS
    from the environment) runs one deployment of your own."""
    partitions = os.environ.get("BENCH_E2E_PARTITIONS")
    if partitions is None:
        return DEPLOYMENTS
    linger = os.environ.get("BENCH_E2E_LINGER_MS")
    wait = os.environ.get("CONSUMER_FETCH_MAX_WAIT_MS")  # reaches every process through the environment
    label = (
        f"{partitions} partitions"
        + (f", intake linger {linger} ms" if linger else "")
        + (f", fetch wait {wait} ms" if wait else "")
    )
    return (Deployment(label, int(partitions), None if linger is None else int(linger)),)


TARGET_P99_MS = 250.0
# The probe asks for the one series it reads (name[] filter) and pauses between scrapes, so that
# measuring costs the services under test little CPU; a change is dated to the midpoint of the
# scrape that first saw it, so the pause can only make latencies look longer, never shorter.
POLL_S = 0.01
PROBE = "/metrics?name[]=tickets_routed_total"
_PARTITION = re.compile(r'partition="(\d+)"')
Counts = dict[str, float]  # per partition label ("" where the series has none)


def routed_counts(text: str) -> Counts:
    counts: Counts = {}
    for line in text.splitlines():
        if line.startswith("tickets_routed_total"):
            found = _PARTITION.search(line)
            part = found.group(1) if found else ""
            counts[part] = counts.get(part, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def routed_sum(text: str) -> float:
    return sum(routed_counts(text).values())


def partition_of(key: str, partitions: int) -> int:
    """The partition the services' producers give ``key`` (murmur2, as Kafka's)."""
    return producer_partition(key.encode(), range(partitions), ())


class Poller(threading.Thread):
    """Samples (monotonic time, routed counts per partition) whenever they change, until stopped."""

    def __init__(self, url: str, base: Counts) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.base = base  # counted before the measured run (the warm-up): not attributed
        self.samples: list[tuple[float, Counts]] = []
        self.stop_at = float("inf")
        self.scrape_ms: list[float] = []

    def total(self) -> float:
        return sum(self.samples[-1][1].values()) if self.samples else 0.0

    def run(self) -> None:
        last: Counts = {}
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < self.stop_at:
                began = time.monotonic()
                try:
                    counted = routed_counts(client.get(self.url).text)
                    value = {part: n - self.base.get(part, 0.0) for part, n in counted.items()}
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


def attribute(
    accepted: list[tuple[str, float]], samples: list[tuple[float, Counts]], partitions: int
) -> list[tuple[float, float]]:
    """(202 time, latency in s) of the accepted tickets that were counted: within each partition,
    the i-th ticket accepted (by 202 time) is counted when the partition's count first reaches i.
    Samples without partition labels (the metrics service's own partitions unknown) count all
    tickets as one sequence."""
    labelled = any(part for _, counts in samples for part in counts)
    by_part: dict[str, list[float]] = {}
    for key, t202 in accepted:
        part = str(partition_of(key, partitions)) if labelled else ""
        by_part.setdefault(part, []).append(t202)
    attributed = []
    for part, times in by_part.items():
        counts = [c.get(part, 0.0) for _, c in samples]  # never decreasing: a counter
        for index, t202 in enumerate(sorted(times)):
            position = bisect.bisect_left(counts, index + 1)
            if position == len(counts):
                break  # never counted within the wait
            attributed.append((t202, samples[position][0] - t202))
    return sorted(attributed)


def tail_ms(attributed: list[tuple[float, float]], accepted: int, q: float) -> float | None:
    """The q-percentile (ms) of all ``accepted`` tickets, those never counted within the wait
    included: they are slower than every counted one, so they take the top ranks, and a percentile
    that falls among them is unknown (None: above the wait, not a figure). Over the counted ones
    alone, 2 % of tickets lost or stuck would leave the p99 of the others looking met."""
    latencies = [latency * 1000 for _, latency in attributed]
    latencies += [math.inf] * max(0, accepted - len(attributed))
    value = percentile(latencies, q)
    return None if value is None or math.isinf(value) else value


def windows(attributed: list[tuple[float, float]], width_s: float = 10.0) -> list[dict[str, Any]]:
    """p50/p99 (ms) per ``width_s`` of the run by 202 time: the embedded broker slows as its logs grow."""
    if not attributed:
        return []
    start = attributed[0][0]
    groups: dict[int, list[float]] = {}
    for t202, latency in attributed:
        groups.setdefault(int((t202 - start) // width_s), []).append(latency * 1000)
    return [
        {"from_s": k * width_s, "p50": percentile(v, 0.5), "p99": percentile(v, 0.99), "n": len(v)}
        for k, v in sorted(groups.items())
    ]


def batch_figures(metrics_text: str, group: str) -> dict[str, float | None]:
    """Mean batch size and time of one consumer group, from its service's /metrics."""
    totals = batch_totals(metrics_text, group)
    batches = totals["batches"]
    if not batches:
        return {"batches": 0, "mean_events": None, "mean_ms": None}
    return {
        "batches": batches,
        "mean_events": totals["events"] / batches,
        "mean_ms": 1000 * totals["seconds"] / batches,
    }


def stage_sampler(
    started: list[tuple[Process, int]], env: dict[str, str], broker_pid: int | None, kind: str
) -> StageSampler:
    """Every 10 s: the router's and metrics' batches and each process's CPU (see stages.py)."""
    (router, router_port), (metrics, metrics_port), (intake, _) = started
    cpu: dict[str, Callable[[], float | None]] = {
        "router": router.cpu_seconds,
        "metrics": metrics.cpu_seconds,
        "intake": intake.cpu_seconds,
    }
    if broker_pid is not None:
        cpu["broker"] = lambda: pid_cpu_seconds(broker_pid)
    if kind == "postgres":
        cpu["postgres"] = postgres_cpu_seconds
    consumers = {
        "router": (f"http://127.0.0.1:{router_port}/metrics", env["ROUTER_GROUP_ID"]),
        "metrics": (f"http://127.0.0.1:{metrics_port}/metrics", env["METRICS_GROUP_ID"]),
    }
    return StageSampler(consumers, cpu)


def measure(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    duration = 10.0 if quick else float(os.environ.get("BENCH_E2E_SECONDS", "60"))
    kind = databases()[-1]  # PostgreSQL when configured: the production database
    results: list[dict[str, Any]] = []
    rows: list[Row] = []
    for plan in deployments():
        result, plan_rows = measure_one(workdir, duration, kind, plan)
        results.append(result)
        rows.extend(plan_rows)
    return {"database": kind, "target_rate": RATE, "seconds": duration, "deployments": results}, rows


def measure_one(
    workdir: Path, duration: float, kind: str, plan: Deployment
) -> tuple[dict[str, Any], list[Row]]:
    mode = webhook_mode()
    bare_summary, bare_accepted, bare_samples = run_bare(workdir, duration, RATE, plan.env(), mode)
    bare_attributed = attribute(bare_accepted, bare_samples, plan.partitions)
    bare_ms = [latency * 1000 for _, latency in bare_attributed]
    secret = secrets.token_urlsafe(24)
    with broker(workdir) as kafka, database(kind, workdir) as url:
        asyncio.run(store_rules(url, 200))
        token = asyncio.run(make_key(url, Role.INTAKE))
        if mode is not None:
            source = SOURCES[mode]
            asyncio.run(make_source(url, source.name, source.adapter, secret, source.options))
        suffix = uuid.uuid4().hex[:6]
        env = {
            **base_env(kafka.bootstrap, url),
            # One source posting 500 deliveries a second: intake's per-source limit (200/s per
            # replica by default) is raised as an operator would; it is still taken per delivery.
            **UNBOUNDED_RATE_LIMIT,
            **plan.env(),
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
            with httpx.Client(timeout=5) as probe:
                warm_up(intake_port, token, lambda: routed_sum(probe.get(probe_url).text))
                base = routed_counts(probe.get(probe_url).text)
            warm_up_s = time.monotonic() - warming
            poller = Poller(probe_url, base)
            sampler = stage_sampler(started, env, kafka.process.pid if kafka.process else None, kind)
            poller.start()
            sampler.start()
            summary, accepted = loadgen(
                intake_port, token, workdir, duration=duration, warmup=0.0, rate=RATE, times=True,
                webhook=mode, secret=secret,
            )  # fmt: skip
            await_all(poller.total, len(accepted))
            poller.stop_at = sampler.stop_at = time.monotonic()
            poller.join()
            sampler.join()
            # Includes the warm-up's few batches: what each consumer's batches were like.
            stages = {
                name: batch_figures(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text, group)
                for name, port, group in (
                    ("router", started[0][1], env["ROUTER_GROUP_ID"]),
                    ("metrics", metrics_port, env["METRICS_GROUP_ID"]),
                )
            }
        finally:
            for process, _ in reversed(started):
                process.stop()
    stages_by_10s = sampler.windows()
    attributed = attribute(accepted, poller.samples, plan.partitions)
    latencies_ms = [latency * 1000 for _, latency in attributed]
    counted = int(poller.total())
    p50, p99 = tail_ms(attributed, len(accepted), 0.5), tail_ms(attributed, len(accepted), 0.99)
    bare_p50 = tail_ms(bare_attributed, len(bare_accepted), 0.5)
    bare_p99 = tail_ms(bare_attributed, len(bare_accepted), 0.99)
    result = {
        "deployment": plan.label,
        "posted": mode or "tickets",
        "env": plan.env(),
        "batches": stages,
        "loadgen": summary,
        "accepted": len(accepted),
        "counted": counted,
        "attributed": len(latencies_ms),
        "never_counted": len(accepted) - len(latencies_ms),  # within the wait: the slowest ranks
        "latency_ms_p50": p50,
        "latency_ms_p99": p99,
        "latency_ms_max": max(latencies_ms) if latencies_ms and len(latencies_ms) == len(accepted) else None,
        "scrape_ms_median": percentile(poller.scrape_ms, 0.5),
        "warm_up_s": round(warm_up_s, 1),
        "by_10s": windows(attributed),
        "stages_by_10s": stages_by_10s,
        "bare": {
            "loadgen": bare_summary,
            "accepted": len(bare_accepted),
            "attributed": len(bare_ms),
            "never_counted": len(bare_accepted) - len(bare_ms),
            "latency_ms_p50": bare_p50,
            "latency_ms_p99": bare_p99,
            "by_10s": windows(bare_attributed),
        },
    }
    achieved = summary["ok_per_second"]
    posted = f"{mode} webhooks" if mode else "native tickets"
    rows = [
        Row(
            "e2e",
            f"bare pipeline 202 -> arrived p50 ({plan.label})",
            None if bare_p50 is None else round(bare_p50, 1),
            "ms",
        ),
        Row(
            "e2e",
            f"bare pipeline 202 -> arrived p99 ({plan.label})",
            None if bare_p99 is None else round(bare_p99, 1),
            "ms",
        ),
        Row(
            "e2e",
            f"achieved rate ({kind}; {plan.label})",
            achieved,
            "tickets/s",
            f">= {RATE:.0f}",
            achieved >= 0.98 * RATE,
        ),
        Row(
            "e2e",
            f"counted / accepted ({kind}; {plan.label})",
            counted,
            f"of {len(accepted)}",
            "all",
            counted == len(accepted),
        ),
        Row(
            "e2e",
            f"202 -> counted p50 ({kind}; {posted}; {plan.label})",
            None if p50 is None else round(p50, 1),
            "ms",
        ),
        Row(
            "e2e",
            f"202 -> counted p99 ({kind}; {posted}; {plan.label})",
            None if p99 is None else round(p99, 1),
            "ms",
            f"< {TARGET_P99_MS:.0f}",
            p99 is not None and p99 < TARGET_P99_MS,
        ),
        Row("e2e", f"intake p99 at {RATE:.0f}/s ({kind}; {plan.label})", summary["latency_ms_p99"], "ms"),
    ]
    for name, figures in stages.items():
        if figures["mean_ms"] is not None and figures["mean_events"] is not None:
            rows.append(
                Row("e2e", f"{name} batch, mean ({kind}; {plan.label})", round(figures["mean_ms"], 1), "ms")
            )
            size = round(figures["mean_events"], 1)
            rows.append(Row("e2e", f"{name} batch size, mean ({kind}; {plan.label})", size, "events"))
    print(f"stages by 10 s ({plan.label}):", flush=True)
    for window in stages_by_10s:
        print(describe(window), flush=True)
    return result, rows
