"""Errors of the router's admin services, and their mapping to problem+json.

The services (used by both the REST API and ``ticketctl``) raise these; the HTTP layer turns
them into problems and the CLI into messages, so neither knows the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.http.preconditions import MISSING, required, stale
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


class Stale(AdminError):
    """The client's If-Match (or the CLI's base version) is not the current state."""

    status = 412
    title = "Precondition failed"

    def __init__(self, current_etag: str, message: str | None = None) -> None:
        super().__init__(message or f"changed meanwhile; the current ETag is {current_etag}")
        self.current_etag = current_etag


class Required(Stale):
    """No If-Match was sent (the REST API requires one on every mutation)."""

    status = 428
    title = "Precondition required"


def check_expected(expected: int | None, current: int, current_etag: str) -> None:
    """``expected`` from If-Match (None: any) against the current revision."""
    if expected == MISSING:
        raise Required(current_etag, f"send If-Match; the current ETag is {current_etag}")
    if expected is not None and expected != current:
        raise Stale(current_etag)


def to_problem(exc: AdminError) -> Problem:
    if isinstance(exc, Required):
        return required(exc.current_etag)
    if isinstance(exc, Stale):
        return stale(exc.current_etag)
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
    except AdminError as exc:
        raise to_problem(exc) from exc
    except OperationalError as exc:
        if not is_lock_conflict(exc):
            raise
        raise Problem(409, "Conflict", "a concurrent change holds the lock; re-read and retry") from exc
