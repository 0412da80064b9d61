"""``GET /v1/tickets/{key}``: a ticket's routing state and its decision history, with reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from sqlalchemy import select

from services.router.models import RouterTicket, RoutingDecision
from services.router.openapi import problems
from shared.auth import Role, require_role
from shared.http.problems import Problem

router = APIRouter(prefix="/v1/tickets", tags=["tickets"])


class DecisionOut(BaseModel):
    event_id: str
    kind: str
    team: str | None
    previous_team: str | None
    status: str
    priority: str
    rule: str | None
    ruleset_version: int | None
    reasons: list[str]
    decided_at: datetime


class TicketOut(BaseModel):
    ticket_key: str
    source: str
    external_id: str
    subject: str
    tags: list[str]
    status: str
    team: str | None
    priority: str
    category: str | None
    category_confidence: float | None
    language: str | None
    created_at: datetime
    routed_at: datetime | None
    resolved_at: datetime | None
    sla: dict[str, Any]
    decisions: list[DecisionOut]


@router.get(
    "/{ticket_key:path}",
    response_model=TicketOut,
    responses=problems(401, 403, 404, 422),
    summary="Routing state and decision history",
)
async def get_ticket(
    ticket_key: str, request: Request, _role: Role = Depends(require_role(Role.VIEWER))
) -> TicketOut:
    async with request.app.state.sessions() as session:
        row = await session.get(RouterTicket, ticket_key)
        if row is None:
            raise Problem(404, "Not found", f"no ticket {ticket_key!r}")
        decisions = (
            await session.scalars(
                select(RoutingDecision)
                .where(RoutingDecision.ticket_key == ticket_key)
                .order_by(RoutingDecision.id)
            )
        ).all()
    return TicketOut(
        ticket_key=row.ticket_key,
        source=row.source,
        external_id=row.external_id,
        subject=str(row.snapshot.get("subject", "")),
        tags=[str(t) for t in row.snapshot.get("tags", [])],
        status=row.status,
        team=row.team,
        priority=row.priority,
        category=row.category,
        category_confidence=row.category_confidence,
        language=row.language,
        created_at=row.created_at,
        routed_at=row.routed_at,
        resolved_at=row.resolved_at,
        sla=row.sla,
        decisions=[DecisionOut.model_validate(d, from_attributes=True) for d in decisions],
    )
