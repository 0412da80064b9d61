from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.models import ClassifierModel


@pytest.fixture(autouse=True)
async def no_active_models(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """The session database is shared: no test starts or ends with an active model."""

    async def clear() -> None:
        async with sessions() as session, session.begin():
            await session.execute(update(ClassifierModel).values(active=False))

    await clear()
    yield
    await clear()


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    yield database_url
