from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.ticketctl.dev import seed
from shared.kafka.embedded import EmbeddedBroker
from tests.conftest import unique_topics
from tests.e2e.stack import Stack


@pytest.fixture
def stack(broker: EmbeddedBroker, database_url: str, tmp_path: Path) -> Iterator[Stack]:
    suffix = uuid.uuid4().hex[:8]
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DATABASE_URL": database_url,
        "TOPIC_PARTITIONS": "3",
        "ROUTER_GROUP_ID": f"router-{suffix}",
        "METRICS_GROUP_ID": f"metrics-{suffix}",
        "LOG_LEVEL": "INFO",
        **{k.upper(): v for k, v in unique_topics().items()},
    }
    asyncio.run(seed(database_url))  # the demo teams and rules (no-op when already seeded)
    running = Stack(env, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()
