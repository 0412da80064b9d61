"""``POST /v1/tickets``: our own JSON ticket format, authenticated with an intake API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from services.intake.publisher import EventPublisher
from services.intake.tickets.schemas import Accepted, TicketIn
from shared.auth import Role, require_role
from shared.events import EventType, ticket_event
from shared.http.problems import PROBLEM_JSON

router = APIRouter(prefix="/v1", tags=["tickets"])

_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}


@router.post(
    "/tickets",
    status_code=202,
    response_model=Accepted,
    responses={401: _PROBLEM, 403: _PROBLEM, 422: _PROBLEM},
    summary="Submit a ticket (create, update, solve or reopen by external_id)",
)
async def submit_ticket(
    ticket: TicketIn, request: Request, _role: Role = Depends(require_role(Role.INTAKE))
) -> Accepted:
    event_type = EventType.TICKET_CREATED if ticket.status == "new" else EventType.TICKET_STATUS_CHANGED
    envelope = ticket_event(event_type, ticket.source, ticket.snapshot())
    publisher: EventPublisher = request.app.state.publisher
    delivery = await publisher.publish([envelope])
    return Accepted(event_id=str(envelope.event_id), ticket_key=envelope.ticket_key, delivery=delivery.value)
