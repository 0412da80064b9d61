"""The router's cost per batch, in-process: the same handler the service runs (200 rules, the active
category model, load balancing, the outbox), fed batches of 1, 15 and 50 new tickets.

    .venv/bin/python bench/bench_batches.py [--batches 200] --json out.json   (or: make bench)

At 500 tickets/s end to end a router takes ~15 tickets a batch, and a batch's statements and round
trips cost the same for 1 ticket as for 500: what a batch costs before its tickets (the intercept of
CPU per batch over its size, least squares) sets most of the router's CPU there. Measured on
PostgreSQL when BENCH_POSTGRES_URL or TEST_POSTGRES_URL is set (else SQLite), with a producer that
acknowledges at once (the broker is not measured here), after 50 warm-up batches per size, with
the router process's settings (uvloop, the collector's thresholds, the start-up heap frozen).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_router import created_tickets, store_classifier, store_rules
from bench.harness.procs import database, databases
from services.router.classification import load_language_model
from services.router.classifiers.live import LiveClassifier
from services.router.routing.handler import RoutingHandler
from services.router.routing.policy import LiveRules
from services.router.slas.runtime import priority_matrix, start_sla_runtime
from shared.db.engine import create_engine, session_factory
from shared.events import EventEnvelope
from shared.kafka.consumer import ConsumedEvent
from shared.runtime import freeze_startup_heap, tune_collector_for_batches
from shared.settings import RouterSettings

SIZES = (1, 15, 50)
WARM_UP = 50


class AckingBatch(list[bytes]):
    def append(self, *, key: bytes, value: bytes, timestamp: None) -> bool:  # type: ignore[override]
        super().append(value)
        return True


class AckingProducer:
    """Takes the routing events' batches and acknowledges them at once."""

    def __init__(self) -> None:
        self.sent = 0

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(6))

    def create_batch(self) -> AckingBatch:
        return AckingBatch()

    async def send_batch(self, batch: AckingBatch, topic: str, *, partition: int) -> asyncio.Future[None]:
        self.sent += len(batch)
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def created_events(count: int) -> list[ConsumedEvent]:
    """``count`` ticket-created events with the bench's realistic texts, decoded as the loop does."""
    events = []
    for index, event in enumerate(created_tickets(count)):
        envelope, ticket = EventEnvelope.decode(event.to_bytes())
        events.append(ConsumedEvent(envelope, "tickets", index % 6, index, ticket))
    return events


async def measure(url: str, batches: int) -> dict[str, Any]:
    await store_rules(url, 200)
    await store_classifier(url)
    settings = RouterSettings(database_url=url)
    engine = create_engine(url)
    sessions = session_factory(engine)
    producer = AckingProducer()
    sla = await start_sla_runtime(settings, sessions, producer)
    try:
        rules = LiveRules(
            sessions, settings.router_default_team, priority_matrix(settings), before_applying=sla.sla.refresh
        )
        await rules.refresh()
        classifiers = LiveClassifier(sessions, settings.router_classifier_below_threshold)
        await classifiers.refresh()
        load_language_model()
        freeze_startup_heap()  # as the service does after its start-up
        handler = RoutingHandler(
            sessions,
            producer,
            settings.topic_routing_events,
            lambda: rules.policy.bind(classifiers.view),
            options=sla.handler_options,
            outbox=sla.outbox,
        )
        by_size: dict[str, dict[str, float]] = {}
        for size in SIZES:
            events = created_events(size * (WARM_UP + batches))
            chunks = [events[i : i + size] for i in range(0, len(events), size)]
            for chunk in chunks[:WARM_UP]:
                await handler(chunk)
            cpu, wall = time.process_time(), time.perf_counter()
            for chunk in chunks[WARM_UP:]:
                await handler(chunk)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            by_size[str(size)] = {
                "cpu_ms_per_batch": round(1000 * cpu / batches, 3),
                "cpu_us_per_ticket": round(1e6 * cpu / (batches * size), 1),
                "wall_ms_per_batch": round(1000 * wall / batches, 3),
            }
        assert producer.sent == sum(size * (WARM_UP + batches) for size in SIZES)  # every ticket routed
    finally:
        await sla.stop()
        await engine.dispose()
    per_ticket, fixed = least_squares(
        [float(size) for size in SIZES], [by_size[str(size)]["cpu_ms_per_batch"] for size in SIZES]
    )
    return {
        "batches_per_size": batches,
        "by_size": by_size,
        "fixed_cpu_ms_per_batch": round(fixed, 3),
        "marginal_cpu_us_per_ticket": round(1000 * per_ticket, 1),
    }


def least_squares(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through the points."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return slope, mean_y - slope * mean_x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    kind = databases()[-1]  # PostgreSQL when configured: the production database
    workdir = args.json.parent
    tune_collector_for_batches()  # the router's process settings: its collector thresholds, uvloop
    with database(kind, workdir) as url:
        result = {"database": kind, **uvloop.run(measure(url, args.batches))}
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
