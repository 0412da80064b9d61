"""Team capacity from shift schedules, and priority-weighted load.

capacity = agents on shift at an instant x tickets per agent. Shifts reuse the business
calendar's weekly-hours format (and so its time-zone/DST handling); overlapping shifts add up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.router.sla.calendar import (
    BusinessCalendar,
    Holiday,
    IanaTimezone,
    WeeklyHours,
    check_weekly_hours,
    normalise_weekly_hours,
)
from shared.events import Priority, TicketStatus
from shared.http.json_types import JsonInt

DEFAULT_PRIORITY_WEIGHTS: Mapping[Priority, float] = MappingProxyType(
    {
        Priority.P1: 4.0,
        Priority.P2: 2.0,
        Priority.P3: 1.0,
        Priority.P4: 0.5,
    }
)
# Pending/on-hold tickets wait on someone else and do not occupy an agent.
DEFAULT_COUNTED_STATUSES: frozenset[TicketStatus] = frozenset({TicketStatus.NEW, TicketStatus.OPEN})
# Agents on one shift, as many as a team's fixed capacity allows tickets. Bounded so that every
# stored schedule reads back: JSON numbers beyond a double fail the read of every team.
MAX_AGENTS = 100_000


@dataclass(frozen=True, slots=True)
class TeamLoad:
    team: str
    open_weighted: float
    capacity: float
    active: bool = True

    @property
    def has_room(self) -> bool:
        return self.active and self.capacity > 0 and self.open_weighted < self.capacity

    @property
    def ratio(self) -> float:
        return self.open_weighted / self.capacity if self.capacity > 0 else float("inf")


class Shift(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    hours: WeeklyHours
    agents: JsonInt = Field(ge=0, le=MAX_AGENTS)

    @field_validator("hours", mode="before")
    @classmethod
    def _normalise(cls, raw: object) -> object:
        return normalise_weekly_hours(raw)

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, hours: WeeklyHours) -> WeeklyHours:
        return check_weekly_hours(hours)


class TeamSchedule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    team: str = Field(min_length=1, max_length=300)
    timezone: IanaTimezone = "UTC"
    shifts: list[Shift] = Field(default_factory=list)
    tickets_per_agent: float = Field(gt=0)
    holidays: list[Holiday] = Field(default_factory=list)
    active: bool = True

    @cached_property
    def shift_calendars(self) -> tuple[tuple[BusinessCalendar, int], ...]:
        return tuple(
            (
                BusinessCalendar(
                    # A label (a calendar's name is at most 200 characters; team and shift: 300).
                    name=f"{self.team}/{s.name}"[:200],
                    timezone=self.timezone,
                    weekly_hours=s.hours,
                    holidays=self.holidays,
                ),
                s.agents,
            )
            for s in self.shifts
            if any(s.hours.values())
        )

    def agents_on_shift(self, at: datetime) -> int:
        return sum(agents for calendar, agents in self.shift_calendars if calendar.is_open(at))

    def capacity_at(self, at: datetime) -> float:
        return self.agents_on_shift(at) * self.tickets_per_agent


@dataclass(frozen=True, slots=True)
class LoadConfig:
    priority_weights: Mapping[Priority, float] = field(default_factory=lambda: dict(DEFAULT_PRIORITY_WEIGHTS))
    counted_statuses: frozenset[TicketStatus] = DEFAULT_COUNTED_STATUSES
    weighted: bool = True  # False: every counted ticket weighs 1

    def weight(self, status: TicketStatus, priority: Priority) -> float:
        if status not in self.counted_statuses:
            return 0.0
        return self.priority_weights.get(priority, 1.0) if self.weighted else 1.0


def weighted_open(
    tickets: Iterable[tuple[TicketStatus, Priority]], config: LoadConfig = LoadConfig()
) -> float:
    """Load of a team's open tickets given as ``(status, priority)`` pairs."""
    return sum(config.weight(status, priority) for status, priority in tickets)


def team_load(
    schedule: TeamSchedule,
    tickets: Iterable[tuple[TicketStatus, Priority]],
    at: datetime,
    config: LoadConfig = LoadConfig(),
) -> TeamLoad:
    return TeamLoad(
        team=schedule.team,
        open_weighted=weighted_open(tickets, config),
        capacity=schedule.capacity_at(at),
        active=schedule.active,
    )
