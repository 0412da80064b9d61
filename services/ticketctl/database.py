"""The one way ticketctl commands touch the database: a committed transaction on DATABASE_URL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncSession

from services.ticketctl.output import fail
from shared.db.engine import async_url, create_engine, session_factory
from shared.http.preconditions import Stale
from shared.settings import CommonSettings

T = TypeVar("T")
# The largest id or version a row can have (BIGINT; SQLite's INTEGER): a command's numeric argument
# beyond it is a usage error, not an OverflowError from the driver binding it.
ROW_ID_MAX = 2**63 - 1
# The engine (shared.db.engine, as every service uses it) drives these two only; another driver
# named explicitly (postgresql+psycopg2://) failed deep inside SQLAlchemy with a page of traceback.
ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}
EXAMPLES = {
    "asyncpg": "postgresql+asyncpg://user:password@host:5432/db",
    "aiosqlite": "sqlite+aiosqlite:///path",
}


class DatabaseUrlError(ValueError):
    """DATABASE_URL has a mistake the services would fail on too. The message quotes the scheme and
    option names only, never the URL: it carries the password."""


def checked_url(database_url: str | None = None) -> str:
    """``database_url`` (default: DATABASE_URL) as the engine reads it (``async_url``, as the
    services do), once it names a driver and options the engine can use."""
    url = async_url(database_url or CommonSettings().database_url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ArgumentError's text quotes the URL, password and all
        raise DatabaseUrlError(
            "cannot be read as scheme://user:password@host:port/database (is the port a number, "
            "are @ : / in the password %-encoded?)"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    wanted = ASYNC_DRIVERS.get(backend)
    if wanted is not None and driver != wanted:
        raise DatabaseUrlError(
            f"{parsed.drivername}:// is not supported: use {EXAMPLES[wanted]} "
            f"(ticketctl and the services connect with {wanted})"
        )
    return url


async def in_transaction(work: Callable[[AsyncSession], Awaitable[T]], database_url: str | None = None) -> T:
    engine = create_engine(checked_url(database_url))
    try:
        async with session_factory(engine)() as session, session.begin():
            return await work(session)
    finally:
        await engine.dispose()


def run_in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """For synchronous (typer) commands."""
    return asyncio.run(in_transaction(work))


def read_modify_write(
    what: str, work: Callable[[AsyncSession], Awaitable[T]]
) -> Callable[[AsyncSession], Awaitable[T]]:
    """``work`` for a command that reads ``what`` and writes it back changed.

    The services check the write against what the command read (``WHERE revision = <read>``
    when the read and the write share ``work``'s transaction, or the base version it passes), so
    another admin's change committed in between fails it (:class:`Stale`) instead of being
    overwritten. That is one line on stderr naming ``what``, exit status 1; nothing is written."""

    async def checked(session: AsyncSession) -> T:
        try:
            return await work(session)
        except Stale as exc:  # the service's message speaks HTTP (ETags, re-read): say it for a shell
            raise fail(f"{what} changed by someone else since it was read; run the command again") from exc

    return checked
