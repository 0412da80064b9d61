"""The end-to-end baseline: the same two broker hops with nothing of ours in between.

bare intake (bench/harness/bare_intake.py: parse, produce, 202 after the ack) -> tickets topic ->
bare router (bench/harness/bare_router.py: getmany, produce, acks, commit) -> output topic -> a
reader in this process, all with the services' client settings, at the same offered rate and
duration, on a broker of its own (the embedded broker slows down as its logs grow, so each
pipeline gets a fresh one). Latency is attributed by counting arrivals per partition, as for the
real pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench.harness.procs import bare_intake, bare_router, base_env, broker
from bench.harness.run import loadgen
from shared.settings import ConsumerSettings


class ArrivalCounter(threading.Thread):
    """Samples (monotonic time, messages arrived per partition beyond the warm-up's) on one topic,
    until stopped."""

    def __init__(self, bootstrap: str, topic: str, fetch_max_wait_ms: int) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.count = 0
        self.base = 0
        self.by_partition: dict[str, float] = {}
        self.samples: list[tuple[float, dict[str, float]]] = []
        self.stop_at = float("inf")
        self._lock = threading.Lock()

    def rebase(self) -> int:
        """Start counting from what arrived so far (the warm-up's), dropping its samples: kept, they
        led the measured run's samples with counts that were not its own."""
        with self._lock:
            self.base = self.count
            self.by_partition = {}
            self.samples.clear()
            return self.base

    def total(self) -> float:
        return float(self.count - self.base)

    def run(self) -> None:
        asyncio.run(self._follow())

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.fetch_max_wait_ms,
        )
        await consumer.start()
        try:
            while time.monotonic() < self.stop_at:
                batch = await consumer.getmany(timeout_ms=50)
                arrived = sum(len(records) for records in batch.values())
                if arrived:
                    with self._lock:
                        self.count += arrived
                        for tp, records in batch.items():
                            part = str(tp.partition)
                            self.by_partition[part] = self.by_partition.get(part, 0.0) + len(records)
                        self.samples.append((time.monotonic(), dict(self.by_partition)))
        finally:
            await consumer.stop()


def warm_up(
    intake_port: int, token: str, counted: Callable[[], float], tickets: int = 12, timeout_s: float = 120.0
) -> float:
    """Post a few tickets and wait until ``counted()`` reaches them all, so the measured run starts
    on a flowing pipeline: every consumer group has its partitions (a rebalance on the embedded
    broker takes seconds) and every connection is open. Returns the count then."""
    deadline = time.monotonic() + timeout_s
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(timeout=5, headers={"Authorization": f"Bearer {token}"}) as client:
        for index in range(tickets):
            body = {"external_id": f"warm-up-{tag}-{index}", "subject": "Warm-up", "description": "Warm-up"}
            client.post(f"http://127.0.0.1:{intake_port}/v1/tickets", json=body).raise_for_status()
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            value = counted()
            if value >= tickets:
                return value
        time.sleep(0.05)
    raise RuntimeError(f"the pipeline did not count {tickets} warm-up tickets within {timeout_s:.0f} s")


def await_all(counted: Callable[[], float], expected: int, timeout_s: float = 30.0) -> None:
    """Wait (bounded) until ``counted()`` reaches every accepted ticket."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and counted() < expected:
        time.sleep(0.05)


def run_bare(
    workdir: Path, duration: float, rate: float, deployment: dict[str, str], webhook: str | None = None
) -> tuple[dict[str, Any], list[tuple[str, float]], list[tuple[float, dict[str, float]]]]:
    """(load generator summary, (ticket key, 202 time) pairs, arrival samples per partition) of the
    bare pipeline; ``deployment``: the environment both pipelines share (partitions, producer
    linger); ``webhook``: the webhook mode both post (None: native tickets)."""
    with broker(workdir) as kafka:
        # The bare processes use no database.
        env = {**base_env(kafka.bootstrap, "sqlite+aiosqlite:///:memory:"), **deployment}
        intake, port = bare_intake(env, workdir)
        forwarder = bare_router(
            env, workdir, kafka.bootstrap, env["TOPIC_TICKET_EVENTS"], env["TOPIC_ROUTING_EVENTS"],
            count=10**9, timeout_s=duration + 300,
        )  # fmt: skip
        # The reader consumes as the metrics service would in this deployment.
        wait = env.get("CONSUMER_FETCH_MAX_WAIT_MS")
        wait_ms = ConsumerSettings().consumer_fetch_max_wait_ms if wait is None else int(wait)
        counter = ArrivalCounter(kafka.bootstrap, env["TOPIC_ROUTING_EVENTS"], wait_ms)
        try:
            intake.wait_ready(port)
            counter.start()
            warm_up(port, "none", lambda: float(counter.count))
            counter.rebase()
            summary, accepted = loadgen(
                port, "none", workdir, duration=duration, warmup=0.0, rate=rate, times=True,
                webhook=webhook, secret="unchecked",
            )  # fmt: skip
            await_all(counter.total, len(accepted))
        finally:
            counter.stop_at = time.monotonic()
            forwarder.stop()
            intake.stop()
        counter.join(timeout=30)
    return summary, accepted, counter.samples
