"""Intake throughput and latency next to a bare baseline, measured in the same run.

    .venv/bin/python -m bench --only intake [--quick]

Per database (SQLite; PostgreSQL when BENCH_POSTGRES_URL or TEST_POSTGRES_URL is set): the bare
endpoint (bench/harness/bare_intake.py) and the real intake service, each its own uvicorn process
with uvloop on the embedded broker, each driven by the load generator process at a fixed
concurrency of keep-alive connections, on two paths:

* ``POST /v1/tickets`` without an Idempotency-Key (no database round trip per request); the bare
  endpoint parses the same ticket and produces the same event.
* ``POST /v1/webhooks/<source>`` with GitHub ``issues.opened`` deliveries (bench/harness/webhooks.py;
  ``BENCH_INTAKE_WEBHOOKS=github,native`` adds the native adapter): intake looks the source up,
  takes a rate-limit token, verifies the HMAC over the body, adapts the payload, looks the delivery
  id up before it produces and records it once the broker acknowledged (in batches shared by the
  requests in flight: services/intake/ledger.py). Its baseline is the bare
  endpoint's webhook route, which receives the same request and produces the event intake would
  produce for it (adapted with intake's own adapter) but verifies nothing and has no database: the
  ratio prices the signature check, the source lookup, the rate limit and the per-delivery
  lookup and record. The source (and its secret) is created in the database intake uses before the
  turns; intake's per-source rate limit (200/s by default, a product setting per replica) is
  raised for the run so that it is taken for every delivery but never refuses one.

The contenders take turns in an order that is its own mirror image, twice (for the tickets path
alone: bare, intake, intake, bare; each turn a quarter of the duration): the embedded broker gets
slower as it fills, and this order puts no side on the fuller broker. Reports accepted requests per
second and p50 latency (medians of the turns), p99 (the worst turn), intake's rate as a fraction
of its baseline's, and CPU time per answered request (median of the turns; steadier than the rates
on a shared machine): the server process's, the broker's, the PostgreSQL server's and the whole
machine's (the load generator included). The server process is the bottleneck of either side (one
event loop on one core), so the ratio follows its CPU per request most closely.

A verdict is met only if no request sent in the measured window (after each turn's warm-up) got an
answer other than 2xx or a transport error; the ratio's verdict also needs a baseline without
failures. For the webhook path the bench also counts the delivery ids intake claimed: one per 2xx
answer, or some answers were not new tickets (duplicates, ignored events).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness.procs import (
    Process,
    bare_intake,
    base_env,
    broker,
    count_deliveries,
    cpu_us_per_item,
    database,
    databases,
    machine_busy_seconds,
    make_key,
    make_source,
    pid_cpu_seconds,
    postgres_cpu_seconds,
    service,
)
from bench.harness.run import Row, loadgen
from bench.harness.webhooks import MODES, SOURCES
from shared.auth import Role
from shared.kafka.embedded import EmbeddedBroker

CONCURRENCY = 32
TARGET_RATE = 2000.0  # accepted per second
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.8
TICKETS = "tickets"
CPU_KEYS = {  # part of the stack -> its CPU per answered request in a turn's summary
    "server": "cpu_us_per_request",
    "broker": "broker_cpu_us_per_request",
    "database": "database_cpu_us_per_request",
    "machine": "machine_cpu_us_per_request",
}
WEBHOOKS = tuple(
    mode.strip() for mode in os.environ.get("BENCH_INTAKE_WEBHOOKS", "github").split(",") if mode.strip()
)
# Taken for every delivery, never binding (the default is 200/s per source and replica).
UNBOUNDED_RATE_LIMIT = {"INTAKE_RATE_LIMIT_PER_S": "1000000", "INTAKE_RATE_LIMIT_BURST": "1000000"}


def turn_order(paths: tuple[str, ...], rounds: int = 2) -> list[tuple[str, str]]:
    """(path, "bare" | "intake") turns: each path's pair in turn, then all of it mirrored, so every
    contender's turns sit at the same mean position (one path: bare, intake, intake, bare).
    One process of the same code measured over a few seconds moves by +-15 % on this machine."""
    one = [(path, side) for path in paths for side in ("bare", "intake")]
    return (one + one[::-1]) * rounds


def failures(statuses: dict[str, int]) -> dict[str, int]:
    """The answers other than 2xx, and transport errors (counted under the exception's name)."""
    return {
        status: count
        for status, count in statuses.items()
        if count and not (status.isdigit() and 200 <= int(status) < 300)
    }


@dataclass(frozen=True)
class Verdict:
    rate_met: bool
    p99_met: bool
    ratio: float | None
    ratio_met: bool
    failed: int  # intake's failed requests in the measured window
    baseline_failed: int

    @property
    def met(self) -> bool:
        return self.rate_met and self.p99_met and self.ratio_met


def verdict(real: dict[str, Any], baseline: dict[str, Any]) -> Verdict:
    """Intake against the targets and its baseline; any failure in the measured window fails it."""
    failed = sum(failures(real["statuses_measured"]).values())
    baseline_failed = sum(failures(baseline["statuses_measured"]).values())
    rate, p99 = real["ok_per_second"], real["latency_ms_p99"]
    ratio = rate / baseline["ok_per_second"] if baseline["ok_per_second"] else None
    clean = failed == 0
    return Verdict(
        rate_met=clean and rate >= TARGET_RATE,
        p99_met=clean and p99 is not None and p99 < TARGET_P99_MS,
        ratio=ratio,
        ratio_met=clean and baseline_failed == 0 and ratio is not None and ratio >= TARGET_RATIO,
        failed=failed,
        baseline_failed=baseline_failed,
    )


def _sum_statuses(turns: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for turn in turns:
        for status, count in turn.get(key, {}).items():
            total[status] = total.get(status, 0) + count
    return total


def _stack_cpu(server: Process, kafka: EmbeddedBroker, kind: str) -> dict[str, float | None]:
    """CPU seconds so far of the server, the broker, the database server (SQLite runs inside the
    server) and all cores."""
    return {
        "server": server.cpu_seconds(),
        "broker": pid_cpu_seconds(kafka.process.pid) if kafka.process else None,
        "database": postgres_cpu_seconds() if kind == "postgres" else None,
        "machine": machine_busy_seconds(),
    }


def _median_of(turns: list[dict[str, Any]], key: str) -> float | None:
    values = [turn[key] for turn in turns if turn.get(key) is not None]
    return round(statistics.median(values), 1) if values else None


def combine(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """One contender's turns as one result: the median rate and p50 (one disturbed turn does not
    set the figure, for either side), the worst p99, the answers summed; the turns are kept too."""
    p50s = [turn["latency_ms_p50"] for turn in turns if turn["latency_ms_p50"] is not None]
    p99s = [turn["latency_ms_p99"] for turn in turns if turn["latency_ms_p99"] is not None]
    return {
        "ok_per_second": round(statistics.median(turn["ok_per_second"] for turn in turns), 1),
        "latency_ms_p50": round(statistics.median(p50s), 2) if p50s else None,
        "latency_ms_p99": max(p99s) if p99s else None,
        **{key: _median_of(turns, key) for key in CPU_KEYS.values()},
        "ok": sum(turn["ok"] for turn in turns),
        "statuses": _sum_statuses(turns, "statuses"),
        "statuses_measured": _sum_statuses(turns, "statuses_measured"),
        "turns": turns,
    }


def _labels(path: str) -> tuple[str, str]:
    """(prefix of intake's rows, label of the baseline) for a path."""
    if path == TICKETS:
        return "", "bare baseline, /v1/tickets: parse + same event bytes"
    return (
        f"{path} webhook: ",
        f"bare {path} webhook: adapt + the event intake produces, no signature/rate limit/DB",
    )


def path_rows(kind: str, path: str, baseline: dict[str, Any], real: dict[str, Any], v: Verdict) -> list[Row]:
    prefix, bare_label = _labels(path)
    unit = "req/s" if path == TICKETS else "webhooks/s"
    rate_target = f">= {TARGET_RATE:,.0f}, no failures"
    return [
        Row("intake", f"{bare_label} ({kind})", baseline["ok_per_second"], unit),
        Row("intake", f"{prefix}bare p99 ({kind})", baseline["latency_ms_p99"], "ms"),
        Row("intake", f"{prefix}bare failures ({kind})", v.baseline_failed, "requests"),
        Row("intake", f"{prefix}accepted ({kind})", real["ok_per_second"], unit, rate_target, v.rate_met),
        Row("intake", f"{prefix}p50 ({kind})", real["latency_ms_p50"], "ms"),
        Row(
            "intake",
            f"{prefix}p99 ({kind})",
            real["latency_ms_p99"],
            "ms",
            f"< {TARGET_P99_MS:.0f}, no failures",
            v.p99_met,
        ),
        Row(
            "intake",
            f"{prefix}ratio to bare ({kind})",
            None if v.ratio is None else round(v.ratio, 3),
            "x",
            f">= {TARGET_RATIO}, no failures",
            v.ratio_met,
        ),
        Row("intake", f"{prefix}failures ({kind})", v.failed, "requests", "0", v.failed == 0),
        *cpu_rows(kind, prefix, baseline, real),
    ]


def cpu_rows(kind: str, prefix: str, baseline: dict[str, Any], real: dict[str, Any]) -> list[Row]:
    """Where each side's CPU went, per answered request: the server process (which sets the
    ratio, see above), and the broker, the database and the whole machine, whose cores they share
    with the load generator."""
    rows = []
    for part, key in CPU_KEYS.items():
        if part == "database" and kind != "postgres":
            continue
        label = "" if part == "server" else f"{part} "
        rows.append(Row("intake", f"{prefix}bare {label}CPU per request ({kind})", baseline[key], "µs"))
        rows.append(Row("intake", f"{prefix}{label}CPU per request ({kind})", real[key], "µs"))
    return rows


def _report_failures(kind: str, path: str, baseline: dict[str, Any], real: dict[str, Any]) -> None:
    for side, result in (("bare", baseline), ("intake", real)):
        measured, total = failures(result["statuses_measured"]), failures(result["statuses"])
        if measured or total:
            print(f"{side} {path} ({kind}): failed in the measured window {measured}; in all {total}")


def measure(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    duration, warmup = (3.0, 0.5) if quick else (10.0, 1.0)  # per contender over its turns; warm-up per turn
    unknown = [mode for mode in WEBHOOKS if mode not in MODES]
    if unknown:
        raise ValueError(f"BENCH_INTAKE_WEBHOOKS: unknown mode(s) {unknown}; choose from {MODES}")
    paths = (TICKETS, *WEBHOOKS)
    order = turn_order(paths)
    turn_s = duration / order.count(order[0])  # each contender is measured for `duration` in all
    results: dict[str, Any] = {
        "concurrency": CONCURRENCY,
        "duration_s": duration,
        "paths": list(paths),
        "order": [f"{side} {path}" for path, side in order],
        "webhook_rate_limit": UNBOUNDED_RATE_LIMIT,
    }
    rows: list[Row] = []
    secret = secrets.token_urlsafe(24)
    if WEBHOOKS:
        limit = UNBOUNDED_RATE_LIMIT["INTAKE_RATE_LIMIT_PER_S"]
        print(
            f"intake: webhook sources {', '.join(SOURCES[m].name for m in WEBHOOKS)}; per-source rate "
            f"limit raised to {limit}/s (taken per delivery, never binding)",
            flush=True,
        )
    with broker(workdir) as kafka:
        for kind in databases():
            with database(kind, workdir) as url:
                env = {**base_env(kafka.bootstrap, url), **UNBOUNDED_RATE_LIMIT}
                token = asyncio.run(make_key(url, Role.INTAKE))
                for mode in WEBHOOKS:
                    source = SOURCES[mode]
                    asyncio.run(make_source(url, source.name, source.adapter, secret, source.options))
                turns: dict[tuple[str, str], list[dict[str, Any]]] = {turn: [] for turn in order}
                for path, side in order:
                    start = bare_intake if side == "bare" else lambda env, log: service("intake", env, log)
                    process, port = start(env, workdir)
                    try:
                        process.wait_ready(port)
                        before = _stack_cpu(process, kafka, kind)
                        summary, _ = loadgen(
                            port,
                            token if side == "intake" else "none",
                            workdir,
                            duration=turn_s,
                            warmup=warmup,
                            concurrency=CONCURRENCY,
                            webhook=None if path == TICKETS else path,
                            secret=secret,
                        )
                        # CPU per answered request over the turn (warm-up included): the server's,
                        # and what it cost the broker, the database and the machine as a whole.
                        after = _stack_cpu(process, kafka, kind)
                        for part, key in CPU_KEYS.items():
                            summary[key] = cpu_us_per_item(before[part], after[part], summary["ok"])
                    finally:
                        process.stop()
                    turns[(path, side)].append(summary)
                claimed = {mode: asyncio.run(count_deliveries(url, SOURCES[mode].name)) for mode in WEBHOOKS}
            results[kind] = {}
            for path in paths:
                baseline, real = combine(turns[(path, "bare")]), combine(turns[(path, "intake")])
                v = verdict(real, baseline)
                entry: dict[str, Any] = {"bare": baseline, "intake": real, "ratio": v.ratio, "met": v.met}
                rows += path_rows(kind, path, baseline, real, v)
                if path != TICKETS:
                    # Every 2xx a new ticket: one claimed delivery id per accepted webhook.
                    entry["deliveries_claimed"] = claimed[path]
                    rows.append(
                        Row(
                            "intake",
                            f"{path} webhook: delivery ids claimed / 2xx ({kind})",
                            claimed[path],
                            f"of {real['ok']:,}",
                            "all",
                            claimed[path] == real["ok"],
                        )
                    )
                results[kind][path] = entry
                _report_failures(kind, path, baseline, real)
    return results, rows
