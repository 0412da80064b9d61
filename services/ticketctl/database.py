"""The one way ticketctl commands touch the database: a committed transaction on DATABASE_URL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import create_engine, session_factory
from shared.settings import CommonSettings

T = TypeVar("T")


async def in_transaction(work: Callable[[AsyncSession], Awaitable[T]], database_url: str | None = None) -> T:
    engine = create_engine(database_url or CommonSettings().database_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


def run_in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """For synchronous (typer) commands."""
    return asyncio.run(in_transaction(work))
