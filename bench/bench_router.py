"""Router throughput: ticket events in, routing events out, one router process, 200 rules and
an active category classifier.

    .venv/bin/python -m bench --only router [--quick]

Per database (SQLite; PostgreSQL when BENCH_POSTGRES_URL or TEST_POSTGRES_URL is set): store a
200-rule rule set (bench_rules.make_ruleset) as a version, an active category model trained
on generated tickets (language and urgency detection run on every ticket anyway), pre-load N
ticket events onto the tickets topic, then start one router and count the routing events
appearing on the routing topic. The rate is the slope of the routing events' arrival count
over their producer timestamps (``arrival_rate``), so start-up and the group join are not
counted, and the batch size does not bias it. In the same run, the bare loop
(bench/harness/bare_router.py: getmany -> send -> acks -> commit, same settings) forwards the
same N events, measured the same way. A second run per database adds an SLA policy on a
business-hours calendar that every ticket falls under (each event then works out its deadlines
and warning instants on the calendar's open intervals), on a fresh database and topics.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.bench_rules import TEAMS, make_ruleset, make_tickets
from bench.harness.procs import bare_router, base_env, broker, cpu_us_per_item, database, databases, service
from bench.harness.run import Row
from services.router.classification import train
from services.router.classifiers.enrichment import ticket_text
from services.router.classifiers.schemas import LabelKind
from services.router.classifiers.service import activate, store_model
from services.router.models import Team
from services.router.rulesets.store import save_version
from services.router.slas import service as sla_service
from shared.db.engine import create_engine, session_factory
from shared.events import EventEnvelope, EventType, Requester, TicketSnapshot, ticket_event
from shared.kafka.topics import ensure_topics
from shared.settings import CommonSettings

TARGET = 5000.0  # tickets/s per router process on PostgreSQL


async def store_rules(database_url: str, count: int) -> None:
    """The rule set and the teams it names: a team a rule names that does not exist sends its
    tickets to triage (no routing counted), as it would in a deployment."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            session.add_all(Team(name=name, capacity=1_000_000) for name in [*TEAMS, "team-general"])
            await session.flush()
            await save_version(session, make_ruleset(count), "bench", f"{count} generated rules")
    finally:
        await engine.dispose()


# Every ticket runs an SLA clock on business hours, as a support desk's would: its deadlines and
# warning instants are worked out on each event, on the calendar's open intervals.
OFFICE = {
    "name": "office",
    "timezone": "Europe/Berlin",
    "weekly_hours": {"mon-fri": ["09:00-17:00"]},
    "holidays": ["2026-12-24", "2026-12-25", "2026-12-31", "2027-01-01"],
}
STANDARD = {
    "name": "standard",
    "calendar": "office",
    "targets": {
        "P1": {"first_response": 30, "resolution": 240},
        "P2": {"first_response": 60, "resolution": 480},
        "P3": {"first_response": 240, "resolution": 1440},
        "P4": {"first_response": 480, "resolution": 2400},
    },
}


async def store_sla_policy(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await sla_service.save(session, "calendar", "office", OFFICE, "bench", previous=None)
            await sla_service.save(session, "policy", "standard", STANDARD, "bench", previous=None)
    finally:
        await engine.dispose()


async def store_classifier(database_url: str, count: int = 2000) -> None:
    """Train, store and activate a category model on generated tickets, so that every routed
    ticket pays for a real prediction (the labels are the generator's categories: the cost of
    predict() depends on the text and the model's size, not on how learnable the labels are)."""
    specs = make_tickets(count, seed=5)
    texts = [ticket_text(spec["subject"], spec["description"]) for spec in specs]
    model = train(texts, [spec["category"] for spec in specs], folds=3)
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            row = await store_model(
                session,
                model,
                name="bench",
                label_kind=LabelKind.CATEGORY,
                figures={},
                trained_on={"n": count},
            )
            await activate(session, row.id, "bench")
    finally:
        await engine.dispose()


def created_tickets(count: int) -> list[EventEnvelope]:
    """``count`` ticket-created events with the generator's varied, realistic texts."""
    run = uuid.uuid4().hex[:6]
    events = []
    for index, spec in enumerate(make_tickets(count)):
        snapshot = TicketSnapshot(
            external_id=f"{run}-{index}",
            subject=spec["subject"],
            description=spec["description"],
            tags=spec["tags"],
            channel=spec["channel"],
            requester=Requester(email=spec["requester_email"], customer_tier=spec["customer_tier"]),
            priority=spec["priority"],
            custom_fields=spec["custom"],
        )
        events.append(ticket_event(EventType.TICKET_CREATED, spec["source"], snapshot))
    return events


async def preload(settings: CommonSettings, count: int) -> None:
    """Put ``count`` ticket-created events with varied text on the tickets topic."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_servers(), acks="all", linger_ms=20)
    await producer.start()
    try:
        futures = []
        for envelope in created_tickets(count):
            futures.append(
                await producer.send(
                    settings.topic_ticket_events, value=envelope.to_bytes(), key=envelope.ticket_key.encode()
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def arrival_rate(stamps_ms: Sequence[int]) -> float | None:
    """Messages per second: the least-squares slope of the arrival count over the timestamps.

    A batch's messages share about one timestamp, so the count rises in steps. (count - 1) over
    the first-to-last span counted the first step's messages, published before the span began,
    as if sent within it: an overestimate of one batch in N, 5 % at batches of 500 and 20 % at
    2,000 in 10,000. The slope through evenly spaced steps is their size over their spacing,
    whatever the batch size."""
    if len(stamps_ms) < 2:
        return None
    times = sorted(stamps_ms)
    mean_t = sum(times) / len(times)
    mean_i = (len(times) - 1) / 2
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return None
    slope = sum((t - mean_t) * (i - mean_i) for i, t in enumerate(times)) / spread
    return slope * 1000


async def count_arrivals(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout_s: float,
    cpu_seconds: Callable[[], float | None] | None = None,
) -> dict[str, Any]:
    """Follow ``topic`` from the start until ``expected`` messages arrived (or the timeout).

    With ``cpu_seconds`` (the producing process's CPU time so far), also the CPU it spent per
    message between the first arrival and the last: read as they arrive, within ~0.1 s of them."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, fetch_max_bytes=16 * 1024 * 1024, max_partition_fetch_bytes=4 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    seen = with_sla = 0  # with_sla: messages whose ticket state carries a resolution deadline
    tickets: set[bytes] = set()  # distinct keys: a duplicate must not count as a ticket routed
    # Rates come from the records' own timestamps (set when the producer sent them), so they do
    # not depend on when this reader caught up: it may start after the bare loop has finished.
    stamps: list[int] = []
    seen_first = 0  # arrivals by the first reading of the CPU time
    cpu_first: float | None = None
    cpu_last: float | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while seen < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100, max_records=5000)
            for records in batch.values():
                seen += len(records)
                stamps += [record.timestamp for record in records]
                tickets.update(record.key or b"" for record in records)
                with_sla += sum(b'"resolution_due":"' in (record.value or b"") for record in records)
            if batch and cpu_seconds is not None:
                cpu_last = cpu_seconds()
                if not seen_first:
                    seen_first, cpu_first = seen, cpu_last
    finally:
        await consumer.stop()
    rate = arrival_rate(stamps)
    return {
        "events": seen,
        "tickets": len(tickets),
        "with_resolution_due": with_sla,
        "expected": expected,
        "per_second": None if rate is None else round(rate, 1),
        "cpu_us_per_event": cpu_us_per_item(cpu_first, cpu_last, seen - seen_first),
    }


def run_router(
    bootstrap: str, kind: str, workdir: Path, count: int, timeout_s: float, *, sla: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """One router on a fresh database and fresh topics holding ``count`` ticket events, next to
    the bare loop forwarding the same events: (bare figures, router figures). ``sla``: also an
    SLA policy on a business-hours calendar that every ticket falls under."""
    with database(kind, workdir) as url:
        env = base_env(bootstrap, url)
        settings = CommonSettings(
            kafka_bootstrap_servers=bootstrap, topic_partitions=int(env["TOPIC_PARTITIONS"]),
            topic_ticket_events=env["TOPIC_TICKET_EVENTS"],
            topic_routing_events=env["TOPIC_ROUTING_EVENTS"],
            topic_dead_letter=env["TOPIC_DEAD_LETTER"],
        )  # fmt: skip
        asyncio.run(store_rules(url, 200))
        asyncio.run(store_classifier(url))
        if sla:
            asyncio.run(store_sla_policy(url))
        asyncio.run(preload(settings, count))

        bare_topic = f"{settings.topic_routing_events}-bare"
        bare = bare_router(
            env, workdir, bootstrap, settings.topic_ticket_events, bare_topic, count, timeout_s
        )
        try:
            baseline = asyncio.run(count_arrivals(bootstrap, bare_topic, count, timeout_s, bare.cpu_seconds))
        finally:
            bare.stop()

        router, _port = service(
            "router", {**env, "ROUTER_GROUP_ID": f"router-{uuid.uuid4().hex[:6]}"}, workdir
        )
        try:
            routed = asyncio.run(
                count_arrivals(bootstrap, settings.topic_routing_events, count, timeout_s, router.cpu_seconds)
            )
        finally:
            router.stop()
    return baseline, routed


def measure(workdir: Path, quick: bool) -> tuple[dict[str, Any], list[Row]]:
    # 30,000: fifteen batches of 2,000, so that the slope and the CPU reading (taken between the
    # first and the last arrival) span more than the four batch intervals that 10,000 gave.
    count = 3000 if quick else 30_000
    timeout_s = 60.0 if quick else 240.0
    results: dict[str, Any] = {
        "events": count,
        "rules": 200,
        "classifier": "category model, active",
        "router_with_sla": "also policy 'standard' on a business-hours calendar, every ticket",
    }
    rows: list[Row] = []
    with broker(workdir) as kafka:
        for kind in databases():
            baseline, routed = run_router(kafka.bootstrap, kind, workdir, count, timeout_s, sla=False)
            _, with_sla = run_router(kafka.bootstrap, kind, workdir, count, timeout_s, sla=True)
            results[kind] = {"bare": baseline, "router": routed, "router_with_sla": with_sla}
            for figures in (routed, with_sla):
                if figures["events"] < count:
                    seen = figures["events"]
                    print(f"router ({kind}): only {seen} of {count} routing events within {timeout_s}s")
            rate = routed["per_second"]
            on_postgres = kind == "postgres"
            # A rate is only a verdict when every ticket was routed, once each.
            complete = routed["events"] == count and routed["tickets"] == count
            rows += [
                Row("router", f"bare consume+produce ({kind})", baseline["per_second"], "events/s"),
                Row(
                    "router",
                    f"routed once each / preloaded ({kind})",
                    routed["tickets"],
                    f"of {count}; {routed['events']} events",
                    "all",
                    complete,
                ),
                Row(
                    "router",
                    f"routed, 200 rules + classifier ({kind})",
                    rate,
                    "tickets/s",
                    f">= {TARGET:,.0f}" if on_postgres else "",
                    (complete and rate is not None and rate >= TARGET) if on_postgres else None,
                ),
                Row(
                    "router",
                    f"routed, also an SLA clock on every ticket ({kind})",
                    with_sla["per_second"],
                    "tickets/s",
                ),
                # What the router's process spent per ticket: at 100 % of a core it is 1e6 / rate.
                Row("router", f"bare CPU per event ({kind})", baseline["cpu_us_per_event"], "µs"),
                Row("router", f"router CPU per ticket ({kind})", routed["cpu_us_per_event"], "µs"),
                Row(
                    "router", f"router CPU per ticket, SLA clock ({kind})", with_sla["cpu_us_per_event"], "µs"
                ),
                Row(
                    "router",
                    f"with an SLA deadline, SLA run ({kind})",
                    with_sla["with_resolution_due"],
                    "events",
                ),
            ]
    return results, rows
