"""``GET /v1/audit``: the audit log, newest first (viewer key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from services.router.openapi import READ, problems
from shared.auth import Role, require_role
from shared.db import audit
from shared.db.base import UtcAwareDatetime

router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=[Depends(require_role(Role.VIEWER))])


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    detail: dict[str, Any]


@router.get("", response_model=list[AuditOut], responses=problems(*READ), summary="The audit log")
async def list_audit(
    request: Request,
    entity: str | None = Query(
        None, max_length=50, description="e.g. team, ruleset, sla_policy, writeback_target, source"
    ),
    entity_id: str | None = Query(None, max_length=200),
    since: UtcAwareDatetime | None = Query(None, description="Only entries at or after this instant"),
    limit: int = Query(100, ge=1, le=audit.MAX_LIMIT),
) -> list[AuditOut]:
    async with request.app.state.sessions() as session:
        rows = await audit.list_entries(session, entity=entity, entity_id=entity_id, since=since, limit=limit)
    return [AuditOut.model_validate(row, from_attributes=True) for row in rows]
