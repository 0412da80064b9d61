"""Acceptance of the metrics service: a random event stream on the real broker, the service as a
real process, every backlog series compared with a naive ground truth, before and after SIGKILL.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from shared.events import TICKET_EVENT_TYPES, EventEnvelope, utc_now
from tests.e2e.stack import Stack
from tests.integration.metrics.truth import Key, Stream, Truth

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BACKLOG_PREFIXES = ("ticket_", "tickets_", "sla_breaches")
# Series that move continuously with the wall clock: compared within the scrape's time bracket.
CONTINUOUS = ("ticket_open_age_gsum", "ticket_oldest_open_age_seconds")


def now_ms() -> int:
    return round(time.time() * 1000)


def scrape(stack: Stack) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for family in text_string_to_metric_families(stack.metrics_text("metrics")):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def produce(stack: Stack, events: Iterable[EventEnvelope], truth: Truth) -> int:
    """Produce in stream order (keyed by ticket: same partition number in both topics)."""
    env = stack.env
    batch = list(events)

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
        await producer.start()
        try:
            for event in batch:
                topic = (
                    env["TOPIC_TICKET_EVENTS"]
                    if event.type in TICKET_EVENT_TYPES
                    else env["TOPIC_ROUTING_EVENTS"]
                )
                await producer.send_and_wait(topic, event.to_bytes(), key=event.ticket_key.encode())
                truth.apply(event, now_ms())
        finally:
            await producer.stop()

    asyncio.run(run())
    return len(batch)


def wait_caught_up(stack: Stack, truth: Truth, timeout_s: float = 90) -> None:
    """Every partition of the group read to its end and every creation counted."""
    group, expected = stack.env["METRICS_GROUP_ID"], sum(truth.received.values())

    seen: dict[str, object] = {}

    def done() -> bool:
        got = scrape(stack)
        lags = {
            dict(labels)["topic"] + ":" + dict(labels)["partition"]: v
            for (name, labels), v in got.items()
            if name == "consumer_lag_messages" and ("group", group) in labels
        }
        received = sum(v for (name, _), v in got.items() if name == "tickets_received_total")
        seen.update(lags=lags, received=received)
        return len(lags) == 6 and not any(lags.values()) and received >= expected

    what = lambda: f"metrics to consume the whole stream ({expected} received): {seen}"  # noqa: E731
    stack.wait_for(done, timeout_s=timeout_s, what=what)


def converged(stack: Stack, truth: Truth, timeout_s: float = 30.0) -> dict[Key, float]:
    """Every series equals the truth. Lag 0 is read from the last fetch's high-water mark, which
    can trail the final few events by a poll, so the exact comparison is retried until it holds
    (the gauges must converge to the truth, exactly) and the last mismatch is reported otherwise."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return compare(stack, truth)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def compare(stack: Stack, truth: Truth) -> dict[Key, float]:
    before = now_ms()
    got: dict[Key, float] = {}
    for (name, labels), value in scrape(stack).items():
        if name.startswith(BACKLOG_PREFIXES):  # counters carry their partition: sum without (partition)
            key = (name, tuple(item for item in labels if item[0] != "partition"))
            got[key] = got.get(key, 0.0) + value
    after = now_ms()
    low, high = truth.expected(before), truth.expected(after)
    assert set(got) == set(low), f"series differ: {sorted(set(got) ^ set(low))}"
    for key, value in low.items():
        if key[0] in CONTINUOUS:
            assert low[key] - 0.002 <= got[key] <= high[key] + 0.002, (key, got[key], low[key], high[key])
        elif key[0].endswith(("_sum", "_gsum")):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key
        else:
            assert value == high[key], f"the stream is not stable around the scrape: {key}"
            assert got[key] == value, (key, got[key], value)
    return got


def test_every_backlog_series_matches_the_ground_truth_across_a_sigkill(stack: Stack) -> None:
    stack.start("metrics")  # creates the topics (3 partitions each)
    stream, truth = Stream(utc_now(), random.Random(20240601)), Truth()

    def steps(n: int) -> list[EventEnvelope]:
        return [env for _ in range(n) for env in stream.step()]

    produce(stack, steps(250), truth)
    wait_caught_up(stack, truth)
    first = converged(stack, truth)
    assert sum(v for k, v in first.items() if k[0] == "ticket_backlog_open") > 20

    produce(stack, steps(150), truth)  # the service is consuming these when it is killed
    stack.kill("metrics")
    produce(stack, steps(100), truth)  # produced while it is down
    stack.start("metrics", wait=False)
    produce(stack, steps(150), truth)
    stack.wait_ready("metrics", timeout_s=90)
    wait_caught_up(stack, truth)
    assert truth.recent_sample_counts() <= 100  # Erlang inputs: every sample still held
    last = converged(stack, truth)
    # Counters after the restart equal the truth exactly: nothing replayed twice.
    assert sum(v for k, v in last.items() if k[0] == "tickets_received_total") == sum(truth.received.values())
    assert "restored" in stack.log_tail("metrics", 400)
