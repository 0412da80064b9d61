"""``GET /v1/tickets/{key}``: a ticket's routing state and its decision history, with reasons."""

from __future__ import annotations

import contextlib
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.models import RouterTicket, RoutingDecision
from services.router.openapi import problems
from services.router.sla import BusinessCalendar, SlaClock
from services.router.slas.service import latest
from services.router.slas.tracking import SlaConfig
from shared.auth import Role, require_role
from shared.events import SlaState
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
    pruned_at: datetime | None = Field(
        description="Set when retention (ROUTER_RESOLVED_RETENTION_DAYS) removed the ticket's text and "
        "decisions; a later event for the ticket clears it."
    )
    sla: SlaState
    decisions: list[DecisionOut] = Field(
        description="The newest ``decisions`` of them (the query), oldest first."
    )
    decisions_omitted: bool = Field(
        default=False,
        description="Older decisions exist than those listed (ask for more with ``decisions``).",
    )


async def live_calendar(session: AsyncSession, name: str) -> BusinessCalendar:
    """The calendar ``name`` as the routers' live SLA configuration holds it (``load_config``).

    Read from the database per request: the app keeps no SLA configuration on ``app.state`` for
    the API, and one calendar's newest version is a single indexed query, cheaper than loading
    (and compiling) the whole configuration. It is also what every router converges to."""
    row = await latest(session, "calendar", name)
    calendars = {}
    if row is not None and not row.deleted:
        with contextlib.suppress(ValueError):  # no longer validates: load_config leaves it out too
            calendars[name] = BusinessCalendar.model_validate(row.document)
    # SlaConfig.calendar: the routers' fallback (always open) for "24x7" or a deleted or unreadable
    # calendar.
    return SlaConfig(calendars=calendars).calendar(name)


async def current_sla(session: AsyncSession, row: RouterTicket) -> SlaState:
    """The ticket's SLA state as the router emits it, warning instants included.

    The stored ``sla`` leaves the warning instants out (see ``RECOMPUTED_SLA_FIELDS``), so they
    are worked out from the stored clock, as ``SlaTracker.refresh`` does for every event."""
    # Fields of a newer release's row are dropped rather than failing the read (extra="forbid").
    try:
        stored = SlaState.model_validate(
            {k: v for k, v in (row.sla or {}).items() if k in SlaState.model_fields}
        )
    except ValueError:  # a value edited by hand, say: show no SLA rather than fail the whole read
        stored = SlaState()
    doc = (row.sla_clock or {}).get("clock")
    if not doc:
        return stored
    try:
        clock = SlaClock.model_validate(doc)
        calendar = await live_calendar(session, clock.calendar)
        deadlines = clock.deadlines(calendar)
    except ValueError:  # pydantic's ValidationError too
        # A clock this release cannot read (the scanner switches its timers off): the stored
        # state, the last one emitted less its warning instants, is the best answer.
        return stored
    return clock.to_sla_state(calendar, deadlines, (row.sla_clock or {}).get("fired", ()))


@router.get(
    "/{ticket_key:path}",
    response_model=TicketOut,
    responses=problems(401, 403, 404, 422),
    summary="Routing state and decision history",
)
async def get_ticket(
    ticket_key: str,
    request: Request,
    decisions_limit: int = Query(
        200, alias="decisions", ge=1, le=1000, description="How many of the newest decisions to list."
    ),
    _role: Role = Depends(require_role(Role.VIEWER)),
) -> TicketOut:
    async with request.app.state.sessions() as session:
        row = await session.get(RouterTicket, ticket_key)
        if row is None:
            raise Problem(404, "Not found", f"no ticket {ticket_key!r}")
        # Bounded: every routing event of a long-lived ticket adds one (the newest are what explains it).
        newest = (
            await session.scalars(
                select(RoutingDecision)
                .where(RoutingDecision.ticket_key == ticket_key)
                .order_by(RoutingDecision.id.desc())
                .limit(decisions_limit + 1)
            )
        ).all()
        decisions = list(reversed(newest[:decisions_limit]))
        sla = await current_sla(session, row)
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
        pruned_at=row.pruned_at,
        sla=sla,
        decisions=[DecisionOut.model_validate(d, from_attributes=True) for d in decisions],
        decisions_omitted=len(newest) > decisions_limit,
    )
