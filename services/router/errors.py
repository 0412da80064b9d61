"""Errors of the router's admin services, and their mapping to problem+json.

The services (used by both the REST API and ``ticketctl``) raise these, and the shared
:class:`~shared.http.preconditions.Stale` (412/428) of If-Match checks; the HTTP layer turns them
into problems and the CLI into messages, so neither knows the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.http.preconditions import Stale
from shared.http.problems import Problem

Row = TypeVar("Row")


class AdminError(Exception):
    status = 422
    title = "Invalid request"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class NotFound(AdminError):
    status = 404
    title = "Not found"


async def get_or_404(session: AsyncSession, model: type[Row], key: Any, what: str) -> Row:
    """The row of ``model`` with primary key ``key``, or NotFound("no <what>")."""
    row = await session.get(model, key)
    if row is None:
        raise NotFound(f"no {what}")
    return row


class Conflict(AdminError):
    status = 409
    title = "Conflict"


class Invalid(AdminError):
    pass


def to_problem(exc: AdminError | Stale) -> Problem:
    if isinstance(exc, Stale):
        return exc.problem()
    return Problem(exc.status, exc.title, exc.message, errors=exc.errors or None)


def is_lock_conflict(exc: OperationalError) -> bool:
    # SQLite: a writer whose read snapshot is older than another writer's commit cannot upgrade.
    return "locked" in str(exc.orig).lower() or "busy" in str(exc.orig).lower()


@asynccontextmanager
async def transaction(request: Request) -> AsyncIterator[AsyncSession]:
    """One committed transaction per request; service errors become problem+json."""
    try:
        async with request.app.state.sessions() as session, session.begin():
            yield session
    except (AdminError, Stale) as exc:
        raise to_problem(exc) from exc
    except OperationalError as exc:
        if not is_lock_conflict(exc):
            raise
        raise Problem(409, "Conflict", "a concurrent change holds the lock; re-read and retry") from exc
