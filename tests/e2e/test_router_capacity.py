"""Two router processes on one PostgreSQL database share team capacity without overbooking."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.router.assignment import LoadConfig
from services.router.load.store import recount, stored_loads
from services.router.models import RouterTicket, Team
from services.router.rules import RuleSet
from services.router.rulesets.store import save_version
from shared.db.engine import create_engine, session_factory
from shared.db.migrate import upgrade
from shared.events import EventType, TicketSnapshot, ticket_event
from shared.kafka.embedded import EmbeddedBroker
from shared.kafka.producer import make_producer
from shared.kafka.topics import ensure_topics
from shared.settings import CommonSettings
from tests.conftest import POSTGRES_URL, _create_postgres_database, unique_topics
from tests.e2e.stack import Stack

POOL = ["cap-a", "cap-b", "cap-c"]
CAPACITY = 5
TICKETS = 60

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL not set"),
]


async def seed(url: str) -> None:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            session.add_all([Team(name=t, capacity=CAPACITY) for t in POOL])
            session.add(Team(name="overflow", capacity=1000))
            ruleset = RuleSet.model_validate(
                {
                    "rules": [
                        {
                            "id": "pool",
                            "name": "Pool",
                            "actions": {"assign_pool": {"teams": POOL, "strategy": "least_loaded"}},
                        }
                    ]
                }
            )
            await save_version(session, ruleset, "test")
    finally:
        await engine.dispose()


async def produce(settings: CommonSettings) -> None:
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(TICKETS):
            envelope = ticket_event(
                EventType.TICKET_CREATED, "api", TicketSnapshot(external_id=f"t{i}", subject="x")
            )
            await producer.send(
                settings.topic_ticket_events, envelope.to_bytes(), key=envelope.ticket_key.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()


async def snapshot(
    url: str,
) -> tuple[int, dict[str, int], dict[str, tuple[int, float]], dict[str, tuple[int, float]]]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            total = int(await session.scalar(select(func.count()).select_from(RouterTicket)) or 0)
            rows = await session.execute(select(RouterTicket.team, func.count()).group_by(RouterTicket.team))
            per_team = {str(team): int(n) for team, n in rows.all()}
            config = LoadConfig(weighted=False)
            return total, per_team, dict(await stored_loads(session)), await recount(session, config)
    finally:
        await engine.dispose()


def test_two_routers_never_overbook_a_pool(broker: EmbeddedBroker, tmp_path: Path) -> None:
    assert POSTGRES_URL
    url = asyncio.run(_create_postgres_database(POSTGRES_URL))
    upgrade(url)
    asyncio.run(seed(url))
    topics = unique_topics()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "DATABASE_URL": url,
        "TOPIC_PARTITIONS": "6",
        "ROUTER_GROUP_ID": f"router-{uuid.uuid4().hex[:8]}",
        "ROUTER_OVERFLOW_TEAM": "overflow",
        "CONSUMER_BATCH_MAX": "5",  # many small batches: many chances to race
        **{k.upper(): v for k, v in topics.items()},
    }
    stack = Stack(env, tmp_path)  # starts each router on a port of its own, restarts a failed bind
    try:
        for name in ("router", "router-2"):
            stack.start(name, wait=False)
        for name in ("router", "router-2"):
            stack.wait_ready(name)
        settings = CommonSettings.model_validate(
            {"kafka_bootstrap_servers": broker.bootstrap, "topic_partitions": 6, **topics}
        )
        asyncio.run(produce(settings))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            total, per_team, stored, counted = asyncio.run(snapshot(url))
            if total == TICKETS:
                break
            time.sleep(0.3)
        assert total == TICKETS, f"routed {total} of {TICKETS}"
        for team in POOL:
            assert per_team.get(team) == CAPACITY, per_team  # full, never over
        assert per_team.get("overflow") == TICKETS - CAPACITY * len(POOL)
        assert {t: stored[t][0] for t in counted} == {t: c[0] for t, c in counted.items()}
        assert all(stored[t][0] == 0 for t in stored if t not in counted)
    finally:
        stack.stop_all()
