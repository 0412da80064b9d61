"""The documented shape of ``GET /v1/backlog`` (the body itself is built by
:func:`.backlog.views.summary`); declared so the OpenAPI document says what a client gets,
including when ``as_of`` is null."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TeamBacklog(BaseModel):
    open: int
    overdue: int
    at_risk: int
    oldest_age_seconds: float = Field(description="Age of the team's oldest open ticket (0 with none open)")
    by_priority: dict[str, int]
    inflow_per_hour: float
    outflow_per_hour: float
    hours_to_clear: float | None = Field(description="null when tickets are open and nothing flows out")
    agents_needed: int


class BacklogSummary(BaseModel):
    # A string, not a datetime: the body keeps the ISO form views.summary writes (+00:00).
    as_of: str | None = Field(
        json_schema_extra={"format": "date-time"},
        description=(
            "The instant the figures describe (the backlog's clock: event time while the instance "
            "replays, the wall clock once caught up); null while it has no clock: no partition "
            "assigned, or none fed an event or caught up yet. The figures are then all zero, and "
            "say nothing about the backlog."
        ),
    )
    open: int
    triage_open: int
    teams: dict[str, TeamBacklog]
