"""The audit log: every service records its admin changes here, in the change's own transaction;
the router's ``GET /v1/audit`` reads it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import AuditEntry
from shared.events import utc_now

MAX_LIMIT = 1_000
MAX_ID = 2**63 - 1  # the id column is a BIGINT on PostgreSQL


def record(
    session: AsyncSession, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any]
) -> AuditEntry:
    """Add an entry to the caller's transaction: the change and its audit commit together or not at all."""
    entry = AuditEntry(
        at=utc_now(), actor=actor, action=action, entity=entity, entity_id=entity_id, detail=detail
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
