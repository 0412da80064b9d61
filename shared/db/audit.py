"""The audit log: every service records its admin changes here, in the change's own transaction;
the router's ``GET /v1/audit`` reads it."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import AuditEntry
from shared.events import utc_now

MAX_LIMIT = 1_000
MAX_ID = 2**63 - 1  # the id column is a BIGINT on PostgreSQL

# The API key of the request being served, (name, id), set where the request's key is checked
# (shared.auth.authenticate). Every service passes its actor as the key's name, through layers
# that also use it as a version's author; the key's id (names are not unique) comes from here
# rather than through each of those signatures. A request is a task of its own, so it does not
# reach other requests.
_ACTING_KEY: ContextVar[tuple[str, str] | None] = ContextVar("audit_acting_key", default=None)


def acting_key(name: str, key_id: str) -> None:
    """The API key (its name and id) that the current request acts with."""
    _ACTING_KEY.set((name, key_id))


def record(
    session: AsyncSession, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any]
) -> AuditEntry:
    """Add an entry to the caller's transaction: the change and its audit commit together or not at all."""
    key = _ACTING_KEY.get()
    # Only when the actor is that key's name: an entry made under another name (a tool's, in the
    # same task as a request before it, as in tests) is not that key's doing.
    key_id = key[1] if key is not None and key[0] == actor else None
    entry = AuditEntry(
        at=utc_now(),
        actor=actor,
        actor_key_id=key_id,
        action=action,
        entity=entity,
        entity_id=entity_id,
        detail=detail,
    )
    session.add(entry)
    return entry


async def list_entries(
    session: AsyncSession,
    *,
    entity: str | None = None,
    entity_id: str | None = None,
    since: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Newest first; with ``before_id``, only the entries older than that one (a keyset page: the
    next page of a listing starts below the last id it showed, whatever was added since)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(min(limit, MAX_LIMIT))
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if entity is not None:
        query = query.where(AuditEntry.entity == entity)
    if entity_id is not None:
        query = query.where(AuditEntry.entity_id == entity_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return list((await session.scalars(query)).all())
