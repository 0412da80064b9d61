"""``POST /v1/tickets``: our own JSON ticket format, authenticated with an intake API key."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse

from services.intake.openapi import problems
from services.intake.publisher import EventPublisher, Unavailable
from services.intake.tickets.schemas import Accepted, TicketIn
from shared.auth import Role, require_role
from shared.events import EventType, derived_event_id, ticket_event
from shared.http.problems import Problem

router = APIRouter(prefix="/v1", tags=["tickets"])

IDEMPOTENCY_PREFIX = "idempotency:"


@router.post(
    "/tickets",
    status_code=202,
    response_model=Accepted,
    responses={
        200: {"model": Accepted, "description": "Same Idempotency-Key seen before: nothing published"},
        **problems(400, 401, 403, 422, 503),
    },
    summary="Submit a ticket (create, update, solve or reopen by external_id)",
)
async def submit_ticket(
    ticket: TicketIn,
    request: Request,
    idempotency_key: str | None = Header(
        default=None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=150,
        pattern=r"^[\x21-\x7e]+$",
        description="Retries with the same key are acknowledged once and published once.",
    ),
    _role: Role = Depends(require_role(Role.INTAKE)),
) -> JSONResponse:
    event_type = EventType.TICKET_CREATED if ticket.status == "new" else EventType.TICKET_STATUS_CHANGED
    dedupe = (ticket.source, IDEMPOTENCY_PREFIX + idempotency_key) if idempotency_key else None
    # With a key, the event id derives from it, so even a republished retry is one event downstream.
    event_id = derived_event_id(dedupe[0], dedupe[1], "0") if dedupe else None
    envelope = ticket_event(event_type, ticket.source, ticket.snapshot(), event_id=event_id)
    publisher: EventPublisher = request.app.state.publisher
    try:
        outcome = await publisher.accept([envelope], dedupe=dedupe)
    except Unavailable as exc:
        raise Problem(503, "Service unavailable", str(exc), headers={"Retry-After": "5"}) from exc
    body = Accepted(
        event_id=str(envelope.event_id),
        ticket_key=envelope.ticket_key,
        delivery=outcome.delivery.value if outcome.delivery else None,
        duplicate=outcome.duplicate,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if outcome.duplicate else 202)
