"""Two intake processes on one database: a redelivered webhook is published once; copies racing
into both at the same moment are published at most once per replica, under one event id."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.intake.sources import service
from services.intake.sources.schemas import SourceCreate
from shared.db.engine import create_engine, session_factory
from shared.kafka.embedded import EmbeddedBroker
from tests.conftest import unique_topics
from tests.e2e.stack import Stack
from tests.integration.intake.helpers import read_topic
from tests.unit.webhooks._helpers import github_sample, hub

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SECRET = "replica-secret-123"


async def add_source(database_url: str, name: str) -> None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await service.create_source(
                session, SourceCreate(name=name, type="github", secret=SECRET), "tests"
            )
    finally:
        await engine.dispose()


@pytest.fixture
def replicas(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> Iterator[tuple[Stack, Stack, dict]]:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DATABASE_URL": database_url,
        "TOPIC_PARTITIONS": "3",
        "LOG_LEVEL": "INFO",
        **{k.upper(): v for k, v in unique_topics().items()},
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Stack(env, tmp_path / "a"), Stack(env, tmp_path / "b")
    try:
        first.start("intake", wait=False)
        second.start("intake", wait=False)
        first.wait_ready("intake")
        second.wait_ready("intake")
        yield first, second, env
    finally:
        first.stop_all()
        second.stop_all()


def test_redelivery_across_replicas_publishes_once(replicas: tuple[Stack, Stack, dict]) -> None:
    first, second, env = replicas
    name = f"gh-{uuid.uuid4().hex[:8]}"
    asyncio.run(add_source(env["DATABASE_URL"], name))
    body = github_sample("issues.opened.json")

    def deliver(stack: Stack, delivery: str) -> httpx.Response:
        return httpx.post(
            f"{stack.url('intake')}/v1/webhooks/{name}",
            content=body,
            timeout=30,
            headers={
                "Content-Type": "application/json",
                "X-GitHub-Event": "issues",
                "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": hub(body, SECRET, "sha256"),
            },
        )

    delivery = str(uuid.uuid4())
    responses = [deliver(first if i % 2 == 0 else second, delivery) for i in range(5)]
    assert [r.status_code for r in responses] == [202, 200, 200, 200, 200], [r.text for r in responses]
    assert [r.json()["duplicate"] for r in responses] == [False, True, True, True, True]

    # The same delivery racing into both replicas at once: each replica publishes it at most once
    # (a copy waits for the one it is accepting), with the one event id the consumers count once.
    raced = str(uuid.uuid4())

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            calls = [
                client.post(
                    f"{stack.url('intake')}/v1/webhooks/{name}",
                    content=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-GitHub-Event": "issues",
                        "X-GitHub-Delivery": raced,
                        "X-Hub-Signature-256": hub(body, SECRET, "sha256"),
                    },
                )
                for stack in (first, second) * 3
            ]
            return list(await asyncio.gather(*calls))

    raced_responses = asyncio.run(race())
    statuses = sorted(r.status_code for r in raced_responses)
    assert statuses in ([200] * 5 + [202], [200] * 4 + [202] * 2), [r.text for r in raced_responses]
    raced_ids = {r.json()["event_ids"][0] for r in raced_responses}
    assert len(raced_ids) == 1  # every copy names the one event

    events = asyncio.run(
        read_topic(env["KAFKA_BOOTSTRAP_SERVERS"], env["TOPIC_TICKET_EVENTS"], 2, idle_s=2.0)
    )
    assert {str(e.event_id) for e in events} == {responses[0].json()["event_ids"][0], *raced_ids}
    assert len(events) <= 3  # the first delivery once; the raced one at most once per replica
