"""Schemathesis against the metrics service's OpenAPI schema: no 5xx, and every response matches
the declared status codes, content types, headers and schemas (problem+json errors included).

Same approach as the intake's fuzz test: schemathesis runs the ASGI app with its lifespan (real
broker and database, the backlog consumer in a group of its own) on its own loop thread; each
operation's strategy is driven by Hypothesis, bounded and derandomised, with a viewer key (what
GET /v1/backlog asks for). The topics hold a random event stream first, so that the backlog has
teams and figures (a null hours_to_clear among them) for the schema check to look at.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.python import asgi

from services.metrics.app import create_app
from shared.auth import Role
from shared.events import TICKET_EVENT_TYPES
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import MetricsSettings
from tests.e2e.stack import make_key
from tests.fuzzing import fuzz_operations
from tests.integration.metrics.truth import Stream

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_conforms_to_its_schema(
    settings_kwargs: dict[str, Any], database_url: str, mode: GenerationMode
) -> None:
    settings = MetricsSettings(
        database_url=database_url, metrics_group_id=f"fuzz-{uuid.uuid4().hex[:8]}", **settings_kwargs
    )
    asyncio.run(produce_stream(settings, steps=60))
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {asyncio.run(make_key(database_url, Role.VIEWER))}"}
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        by_path = {op.path: op for op in operations}
        assert by_path.keys() >= {"/v1/backlog", "/metrics", "/healthz", "/readyz"}
        wait_until(lambda: by_path["/readyz"].Case().call().status_code == 200)  # 503 while replaying
        backlog = by_path["/v1/backlog"].Case(headers=headers)
        wait_until(lambda: bool(backlog.call().json()["teams"]))  # the stream is in the figures
        fuzz_operations(operations, headers, mode, max_examples=30)
    finally:
        asgi.shutdown_lifespans()  # before the session broker goes away


async def produce_stream(settings: MetricsSettings, steps: int) -> None:
    """A random stream of ticket and routing events (tests/integration/metrics/truth.py)."""
    await ensure_topics(settings)
    stream = Stream(datetime.now(UTC), random.Random(11))
    producer = make_producer(settings)
    await producer.start()
    try:
        for event in (event for _ in range(steps) for event in stream.step()):
            ticket = event.type in TICKET_EVENT_TYPES
            topic = settings.topic_ticket_events if ticket else settings.topic_routing_events
            await producer.send_and_wait(topic, event.to_bytes(), key=event.ticket_key.encode())
    finally:
        await producer.stop()


def wait_until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
