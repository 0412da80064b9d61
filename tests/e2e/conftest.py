from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.models import Team
from services.router.rules import RuleSet
from services.router.rulesets.store import latest, save_version
from services.ticketctl.database import in_transaction
from services.ticketctl.demo import DEMO_RULES, DEMO_TEAMS
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
    asyncio.run(ensure_demo_live(database_url))
    running = Stack(env, tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


async def ensure_demo_live(database_url: str) -> None:
    """The demo teams active and the demo rules live, whatever earlier tests did to the shared DB."""

    async def work(session: AsyncSession) -> None:
        for demo in DEMO_TEAMS:
            team = await session.get(Team, demo.name)
            if team is None:
                session.add(
                    Team(
                        name=demo.name,
                        description=demo.description,
                        capacity=demo.capacity,
                        skills=demo.skills,
                        languages=demo.languages,
                    )
                )
            else:
                team.active = True
                team.capacity = max(team.capacity, demo.capacity)
        await session.flush()
        wanted = RuleSet.model_validate(DEMO_RULES)
        live = await latest(session)
        document = wanted.model_dump(mode="json", by_alias=True, exclude={"version"}, exclude_none=True)
        if live is None or live.document != document:
            await save_version(session, wanted, author="e2e tests", comment="demo rules for the e2e stack")

    await in_transaction(work, database_url)
