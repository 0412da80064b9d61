from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.kafka.embedded import EmbeddedBroker
from tests.conftest import unique_topics
from tests.integration.router_api.helpers import Router, running_router


@pytest.fixture(scope="module")
async def router_api(broker: EmbeddedBroker, database_url: str) -> AsyncIterator[Router]:
    """One router per module (starting one takes seconds); tests use unique team names and
    always read the current rule set ETag, so they do not depend on each other."""
    async with running_router(
        database_url=database_url,
        router_ruleset_poll_s=0.1,
        kafka_bootstrap_servers=broker.bootstrap,
        topic_partitions=3,
        **unique_topics(),
    ) as running:
        yield running
