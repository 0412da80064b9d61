"""The walking skeleton end to end: three real processes, the real broker, a real database."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from services.router.models import RoutingDecision
from shared.db.engine import create_engine, session_factory
from tests.e2e.stack import Stack
from tests.kafka_reading import read_records

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def backlog(stack: Stack) -> float:
    return stack.metric_sum("ticket_backlog_open")


def decisions(stack: Stack, key: str) -> list[dict]:
    response = httpx.get(
        f"{stack.url('router')}/v1/tickets/{key}", headers={"Authorization": f"Bearer {stack.admin_key}"}
    )
    return response.json()["decisions"] if response.status_code == 200 else []


async def count_decisions(database_url: str, key: str) -> int:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(RoutingDecision).where(RoutingDecision.ticket_key == key)
                )
                or 0
            )
    finally:
        await engine.dispose()


def test_ticket_is_routed_counted_and_resolved(stack: Stack) -> None:
    stack.start_all()
    external_id = uuid.uuid4().hex
    assert backlog(stack) == 0
    response = stack.post_ticket(
        {
            "external_id": external_id,
            "subject": "Cannot log in to the VPN",
            "requester": {"email": "ann@example.com"},
            "priority": "high",
        }
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["ticket_key"] == f"api:{external_id}" and body["delivery"] == "published"
    stack.wait_for(lambda: backlog(stack) == 1, what="backlog gauge to reach 1")
    assert stack.metric_sum("tickets_received_total") == 1
    assert stack.metric_sum("tickets_routed_total") == 1
    history = decisions(stack, body["ticket_key"])
    assert [d["kind"] for d in history] == ["ticket.routed"]
    assert history[0]["priority"] == "P2" and history[0]["reasons"]

    solved = stack.post_ticket({"external_id": external_id, "status": "solved"})
    assert solved.status_code == 202
    stack.wait_for(lambda: backlog(stack) == 0, what="backlog gauge back to 0")
    assert stack.metric_sum("tickets_resolved_total") == 1
    assert [d["kind"] for d in decisions(stack, body["ticket_key"])] == ["ticket.routed", "ticket.resolved"]

    reopened = stack.post_ticket({"external_id": external_id, "status": "reopened"})
    assert reopened.status_code == 202
    stack.wait_for(lambda: backlog(stack) == 1, what="reopened ticket back in the backlog")


def test_bad_input_and_missing_keys_get_problem_details(stack: Stack) -> None:
    stack.start("intake")
    url = stack.url("intake") + "/v1/tickets"
    missing = httpx.post(url, json={"external_id": "1"})
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = httpx.post(url, json={"external_id": "1"}, headers={"Authorization": "Bearer tr_intake_nope"})
    assert wrong.status_code == 401
    invalid = stack.post_ticket({"external_id": "1", "priority": "whenever"})
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "/priority"
    no_id = stack.post_ticket({"subject": "no id"})
    assert no_id.status_code == 422 and no_id.json()["errors"][0]["field"] == "/external_id"


def test_router_killed_between_effects_and_commit_decides_once(stack: Stack) -> None:
    stack.start("metrics")
    stack.start("intake")
    stack.start("router", extra_env={"FAULT_PAUSE_BEFORE_COMMIT_S": "60"})
    external_id = uuid.uuid4().hex
    assert stack.post_ticket({"external_id": external_id, "subject": "printer jam"}).status_code == 202
    stack.wait_for(
        lambda: "pausing before commit" in stack.log_tail("router", 200),
        timeout_s=30,
        what="router to hold a handled, uncommitted batch",
    )
    key = f"api:{external_id}"
    assert asyncio.run(count_decisions(stack.env["DATABASE_URL"], key)) == 1  # effect durable
    stack.kill("router")  # SIGKILL: no commit, no goodbye

    stack.start("router")  # same group: the event is delivered again
    stack.wait_for(
        lambda: "duplicate" in stack.metrics_text("router") or False,
        timeout_s=30,
        what="router to see the redelivered event",
    )
    assert asyncio.run(count_decisions(stack.env["DATABASE_URL"], key)) == 1
    assert [d["kind"] for d in decisions(stack, key)] == ["ticket.routed"]
    stack.wait_for(lambda: backlog(stack) == 1, what="ticket counted")
    assert stack.metric_sum("tickets_routed_total") == 1  # the re-published event was not counted twice


def test_non_json_message_is_dead_lettered_and_later_tickets_still_flow(stack: Stack) -> None:
    stack.start_all()
    bootstrap = stack.env["KAFKA_BOOTSTRAP_SERVERS"]
    tickets_topic = stack.env["TOPIC_TICKET_EVENTS"]
    dlq_topic = stack.env["TOPIC_DEAD_LETTER"]

    async def produce_garbage() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(tickets_topic, b"\x00this is not json", key=b"garbage")
        finally:
            await producer.stop()

    asyncio.run(produce_garbage())
    external_id = uuid.uuid4().hex
    assert stack.post_ticket({"external_id": external_id, "subject": "after the garbage"}).status_code == 202
    stack.wait_for(
        lambda: len(decisions(stack, f"api:{external_id}")) == 1,
        timeout_s=20,
        what="the ticket after the poison message to be routed",
    )

    records = asyncio.run(read_records(bootstrap, dlq_topic, 2, idle_s=0.5, timeout_s=10.0))
    # Both consumers (router and metrics) dead-letter the poison they read, each with its reason.
    groups = {dict(r.headers)["dlq.group"].decode() for r in records}
    assert groups == {stack.env["ROUTER_GROUP_ID"], stack.env["METRICS_GROUP_ID"]}
    for record in records:
        assert record.value == b"\x00this is not json"
        assert dict(record.headers)["dlq.reason"].decode().startswith("undecodable:")
        assert dict(record.headers)["dlq.topic"].decode() == tickets_topic
