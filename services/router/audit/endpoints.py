"""``GET /v1/audit``: the audit log, newest first (viewer key), a page at a time.

Pages are keyset pages: a full page's ``Link: <...>; rel="next"`` header asks for the entries below
its last id (``before_id``), so entries recorded while a client pages go to the top and shift
nothing, and no entry is shown twice or skipped (an offset would do both)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from services.router.openapi import READ, problems
from shared.auth import Role, require_role
from shared.db import audit
from shared.db.base import UtcAwareDatetime
from shared.http.pages import link_next, next_link_header

router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=[Depends(require_role(Role.VIEWER))])

NEXT_LINK = next_link_header("/v1/audit?...&before_id=N")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str  # the API key's name, which is not unique
    actor_key_id: str | None  # that key's id; null without a key (ticketctl) and before it was recorded
    action: str
    entity: str
    entity_id: str
    detail: dict[str, Any]


@router.get(
    "",
    response_model=list[AuditOut],
    responses={**problems(*READ), 200: {"description": "Entries, newest first", "headers": NEXT_LINK}},
    summary="The audit log",
)
async def list_audit(
    request: Request,
    response: Response,
    entity: str | None = Query(
        None, max_length=50, description="e.g. team, ruleset, sla_policy, writeback_target, source"
    ),
    entity_id: str | None = Query(None, max_length=200),
    since: UtcAwareDatetime | None = Query(None, description="Only entries at or after this instant"),
    before_id: int | None = Query(
        None,
        ge=1,
        le=audit.MAX_ID,
        description="Only entries older than this one: the cursor of the next page (see the Link header)",
    ),
    limit: int = Query(100, ge=1, le=audit.MAX_LIMIT),
) -> list[AuditOut]:
    async with request.app.state.sessions() as session:
        rows = await audit.list_entries(
            session, entity=entity, entity_id=entity_id, since=since, before_id=before_id, limit=limit
        )
    if len(rows) == limit:  # maybe more: the next page starts below this one's last entry
        link_next(request, response, "before_id", rows[-1].id)
    return [AuditOut.model_validate(row, from_attributes=True) for row in rows]
