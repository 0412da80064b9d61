"""Scale-out: two of each service on the embedded broker and PostgreSQL, one router killed mid-way.

Every ticket must be routed exactly once, and the gauges of the two metrics instances must sum
to the exact totals (each instance owns a disjoint set of partitions).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from services.router.models import RoutingDecision
from shared.db.engine import create_engine, session_factory
from shared.events import EventEnvelope, EventType
from tests.conftest import POSTGRES_URL
from tests.e2e.stack import Stack
from tests.kafka_reading import read_records

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.postgres]

TICKETS = 10_000
CONCURRENCY = 32
METRICS = ("metrics", "metrics-2")


async def post_all(stack: Stack, prefix: str, on_progress) -> int:
    """Post TICKETS tickets alternating between the two intakes; returns how many got a 2xx."""
    urls = itertools.cycle([stack.url("intake") + "/v1/tickets", stack.url("intake-2") + "/v1/tickets"])
    headers = {"Authorization": f"Bearer {stack.intake_key}"}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(TICKETS):
        queue.put_nowait(i)
    accepted = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted
        while not queue.empty():
            i = queue.get_nowait()
            body = {"external_id": f"{prefix}-{i}", "subject": f"scale-out ticket {i}"}
            response = await client.post(next(urls), json=body, headers=headers)
            assert response.status_code == 202, response.text
            accepted += 1
            on_progress(accepted)

    # httpx keeps an idle connection for 5 s by default, exactly as long as uvicorn does: a request
    # written into one that the server is closing fails with ReadError. Drop idle ones sooner.
    limits = httpx.Limits(max_connections=CONCURRENCY, keepalive_expiry=2.0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return accepted


async def routed_counts(database_url: str, prefix: str) -> tuple[int, int]:
    """(tickets with a routing decision, tickets with more than one)."""
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            per_ticket = (
                select(RoutingDecision.ticket_key, func.count().label("n"))
                .where(RoutingDecision.kind == "ticket.routed")
                .where(RoutingDecision.ticket_key.like(f"api:{prefix}-%"))
                .group_by(RoutingDecision.ticket_key)
                .subquery()
            )
            routed = await session.scalar(select(func.count()).select_from(per_ticket))
            doubled = await session.scalar(
                select(func.count()).select_from(per_ticket).where(per_ticket.c.n > 1)
            )
            return int(routed or 0), int(doubled or 0)
    finally:
        await engine.dispose()


def instance_view(stack: Stack) -> dict[str, dict[str, float]]:
    """What each metrics instance counts and how far behind it is, for failure messages."""
    names = ["tickets_routed_total", "tickets_received_total", "consumer_lag_messages"]
    names.append("metrics_partitions_owned")
    return {service: {name: stack.metric_sum(name, service=service) for name in names} for service in METRICS}


def summed(stack: Stack, metric: str) -> float:
    return sum(stack.metric_sum(metric, service=name) for name in METRICS)


def per_partition(stack: Stack, service: str, metric: str) -> dict[int, float]:
    totals: dict[int, float] = {}
    for family in text_string_to_metric_families(stack.metrics_text(service)):
        for sample in family.samples:
            if sample.name == metric and "partition" in sample.labels:
                p = int(sample.labels["partition"])
                totals[p] = totals.get(p, 0.0) + sample.value
    return totals


def stream_truth(stack: Stack) -> dict[int, tuple[int, int]]:
    """Per partition, what the topics hold: (ticket keys created on the tickets topic, ticket keys
    routed on the routing topic), read from their start."""
    bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    created: dict[int, set[str]] = {}
    routed: dict[int, set[str]] = {}
    for topic, kind, into in (
        (stack.env["TOPIC_TICKET_EVENTS"], EventType.TICKET_CREATED, created),
        (stack.env["TOPIC_ROUTING_EVENTS"], EventType.TICKET_ROUTED, routed),
    ):
        for record in asyncio.run(read_records(bootstrap, topic, TICKETS, idle_s=2.0, timeout_s=60.0)):
            envelope, _ = EventEnvelope.decode(record.value or b"")
            if envelope.type == kind:
                into.setdefault(record.partition, set()).add(envelope.ticket_key)
    partitions = sorted(created.keys() | routed.keys())
    return {p: (len(created.get(p, ())), len(routed.get(p, ()))) for p in partitions}


def diagnosis(stack: Stack) -> str:
    """Why the sums differ: each instance's counters by partition against the topics' contents,
    the dead letters and consumer restarts, and what the metrics instances logged above info."""
    lines = [
        f"instances: {instance_view(stack)}",
        f"topics (created, routed) by partition: {stream_truth(stack)}",
    ]
    for service in METRICS:
        received = per_partition(stack, service, "tickets_received_total")
        routed = per_partition(stack, service, "tickets_routed_total")
        both = {p: (received.get(p), routed.get(p)) for p in sorted(received.keys() | routed.keys())}
        lines.append(f"{service} (received, routed) by partition: {both}")
        for metric in ("dead_letters_total", "consumer_restarts_total", "consumer_handler_failures_total"):
            lines.append(f"{service} {metric}: {stack.metric_sum(metric, service=service)}")
        log = stack.log_since_start(service).decode(errors="replace").splitlines()
        lines += [f"{service} log: {line[:400]}" for line in log if '"level":"info"' not in line][-40:]
    return "\n".join(lines)


@pytest.mark.skipif(not POSTGRES_URL, reason="scale-out shares state through PostgreSQL: TEST_POSTGRES_URL")
def test_two_of_each_service_route_every_ticket_once_and_sum_exactly(stack: Stack) -> None:
    if "postgresql" not in stack.env["DATABASE_URL"]:
        pytest.skip("runs on PostgreSQL only")
    stack.env["TOPIC_PARTITIONS"] = "6"
    for name in ("router", "router-2", "metrics", "metrics-2", "intake", "intake-2"):
        stack.start(name, wait=False)
    for name in ("router", "router-2", "metrics", "metrics-2", "intake", "intake-2"):
        stack.wait_ready(name)
    prefix = uuid.uuid4().hex[:12]
    killed = False

    def kill_one_router_halfway(accepted: int) -> None:
        nonlocal killed
        if not killed and accepted >= TICKETS // 2:
            killed = True
            stack.processes["router"].send_signal(signal.SIGKILL)

    assert asyncio.run(post_all(stack, prefix, kill_one_router_halfway)) == TICKETS
    assert killed and stack.processes["router"].wait(timeout=30) == -signal.SIGKILL

    database_url = stack.env["DATABASE_URL"]
    stack.wait_for(
        lambda: asyncio.run(routed_counts(database_url, prefix))[0] == TICKETS,
        timeout_s=300,
        what="the surviving router to route every ticket",
    )
    routed, doubled = asyncio.run(routed_counts(database_url, prefix))
    assert (routed, doubled) == (TICKETS, 0)

    # Each metrics instance exposes only its partitions; their sum is the exact total. The tickets
    # and routing topics are fetched independently: wait for both counters, not for one then read
    # the other. (Received stopped at 9,999 in two CI runs: a fetch of the embedded broker had
    # skipped an offset, which the consumer loop now reads again; see shared/kafka/continuity.py.)
    stack.wait_for(
        lambda: (
            (summed(stack, "tickets_routed_total"), summed(stack, "tickets_received_total"))
            == (TICKETS, TICKETS)
        ),
        timeout_s=120,
        what=lambda: (
            "the summed routed and received counters to reach the ticket count:\n" + diagnosis(stack)
        ),
    )
    assert summed(stack, "ticket_backlog_open") == TICKETS
    per_instance = [stack.metric_sum("ticket_backlog_open", service=name) for name in METRICS]
    assert all(0 < n < TICKETS for n in per_instance), per_instance  # the partitions really are split
