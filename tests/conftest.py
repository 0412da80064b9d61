"""Shared fixtures: a real embedded broker, real databases (SQLite always, PostgreSQL when
``TEST_POSTGRES_URL`` is set), and helpers to start the services as real processes."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db.engine import create_engine, session_factory
from shared.db.migrate import upgrade
from shared.db.scratch import create_database, drop_database
from shared.kafka.embedded import EmbeddedBroker
from shared.settings import CommonSettings

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_MATERIAL = REPO_ROOT.parent / "shared"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker()
    embedded.start()
    yield embedded
    embedded.stop()


def unique_topics() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "topic_ticket_events": f"tickets-{suffix}",
        "topic_routing_events": f"routing-{suffix}",
        "topic_dead_letter": f"dead-letter-{suffix}",
    }


@pytest.fixture
def settings_kwargs(broker: EmbeddedBroker) -> dict[str, object]:
    """Fresh topics per test, so tests never see each other's events."""
    return {"kafka_bootstrap_servers": broker.bootstrap, "topic_partitions": 3, **unique_topics()}


_SCRATCH_DATABASES: list[str] = []


async def _create_postgres_database(base_url: str) -> str:
    """A new PostgreSQL database, dropped when the test session ends."""
    url = await create_database(base_url, "tr_test")
    _SCRATCH_DATABASES.append(url)
    return url


@pytest.fixture(scope="session", autouse=True)
def _drop_scratch_databases() -> Iterator[None]:
    """Drop the databases the session made, after every other fixture is done with them. Each run
    left one per session and per migration test behind (95 on a development server after some
    weeks), and autovacuum visits every database of the server once a minute."""
    yield
    for url in _SCRATCH_DATABASES:
        asyncio.run(drop_database(url))


def database_params() -> list[object]:
    """SQLite, and PostgreSQL when TEST_POSTGRES_URL is set (ids ``sqlite``, ``postgres``)."""
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param(
            "postgres",
            id="postgres",
            marks=[
                pytest.mark.postgres,
                pytest.mark.skipif(not POSTGRES_URL, reason="TEST_POSTGRES_URL not set"),
            ],
        ),
    ]


@pytest.fixture(scope="session", params=database_params())
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database for the session: SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        assert POSTGRES_URL
        url = asyncio.run(_create_postgres_database(POSTGRES_URL))
    upgrade(url)
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    yield eng
    await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


def settings_env(settings: CommonSettings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process."""
    return {name.upper(): str(value) for name, value in settings.model_dump().items() if value is not None}
