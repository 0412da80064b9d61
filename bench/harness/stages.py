"""What each stage of the end-to-end run did, window by window: the consumers' batches (from their
services' /metrics) and each process's CPU, sampled every few seconds while the load runs.

The end-to-end latency grows over the minute; the whole-run means the bench prints cannot say
which stage grows with it. A sample every 10 s costs two full scrapes and a few /proc reads.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

Totals = dict[str, float]  # batches, seconds, events: cumulative, as the counters are


def batch_totals(metrics_text: str, group: str) -> Totals:
    """One consumer group's batches so far: how many, their seconds and the events processed."""
    totals = {"batches": 0.0, "seconds": 0.0, "events": 0.0}
    for line in metrics_text.splitlines():
        if f'group="{group}"' not in line:
            continue
        name = line.split("{", 1)[0]
        value = float(line.rsplit(" ", 1)[1])
        if name == "consumer_batch_seconds_count":
            totals["batches"] += value
        elif name == "consumer_batch_seconds_sum":
            totals["seconds"] += value
        elif name == "consumer_messages_total" and 'outcome="processed"' in line:
            totals["events"] += value
    return totals


@dataclass
class Sample:
    at: float
    cpu: dict[str, float | None]
    batches: dict[str, Totals]


class StageSampler(threading.Thread):
    """``consumers``: stage name -> (its service's /metrics URL, consumer group); ``cpu``: process
    name -> its CPU seconds so far (None when unknown). Samples until ``stop_at``."""

    def __init__(
        self,
        consumers: Mapping[str, tuple[str, str]],
        cpu: Mapping[str, Callable[[], float | None]],
        interval_s: float = 10.0,
    ) -> None:
        super().__init__(daemon=True)
        self.consumers = consumers
        self.cpu = cpu
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.stop_at = float("inf")

    def sample(self, client: httpx.Client) -> None:
        batches: dict[str, Totals] = {}
        for name, (url, group) in self.consumers.items():
            try:
                batches[name] = batch_totals(client.get(url).text, group)
            except httpx.HTTPError:
                continue
        self.samples.append(Sample(time.monotonic(), {n: read() for n, read in self.cpu.items()}, batches))

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            self.sample(client)
            while True:
                wake = self.samples[-1].at + self.interval_s
                while time.monotonic() < min(wake, self.stop_at):
                    time.sleep(0.1)
                self.sample(client)
                if time.monotonic() >= self.stop_at:
                    return

    def windows(self) -> list[dict[str, Any]]:
        return stage_windows(self.samples)


def stage_windows(samples: list[Sample]) -> list[dict[str, Any]]:
    """Per interval between samples: each process's CPU (% of one core) and each consumer's batches
    (count, mean events, mean ms)."""
    out: list[dict[str, Any]] = []
    if not samples:
        return out
    start = samples[0].at
    for before, after in itertools.pairwise(samples):
        span = after.at - before.at
        if span <= 0:
            continue
        cpu: dict[str, float | None] = {}
        for name, now in after.cpu.items():
            then = before.cpu.get(name)
            cpu[name] = None if now is None or then is None else round(100 * (now - then) / span, 1)
        stages: dict[str, dict[str, float | None]] = {}
        for name, now_totals in after.batches.items():
            then_totals = before.batches.get(name)
            if then_totals is None:
                continue
            count = now_totals["batches"] - then_totals["batches"]
            events = now_totals["events"] - then_totals["events"]
            seconds = now_totals["seconds"] - then_totals["seconds"]
            stages[name] = {
                "batches": count,
                "mean_events": round(events / count, 1) if count else None,
                "mean_ms": round(1000 * seconds / count, 1) if count else None,
            }
        out.append({"from_s": round(before.at - start, 1), "cpu_percent": cpu, "batches": stages})
    return out


def describe(window: dict[str, Any]) -> str:
    """One line of a window, for the bench's output."""
    cpu = " ".join(f"{n} {v:.0f}%" for n, v in window["cpu_percent"].items() if v is not None)
    stages = " ".join(
        f"{n} {s['mean_events']} ev/{s['mean_ms']} ms"
        for n, s in window["batches"].items()
        if s["mean_ms"] is not None
    )
    return f"  from {window['from_s']:>5.1f} s: CPU {cpu}; batches {stages}"
