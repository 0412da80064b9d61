"""Request and response bodies of the teams API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from services.router.assignment.capacity import Shift, TeamSchedule
from services.router.errors import Invalid
from services.router.sla.calendar import (
    MAX_DAY_INTERVALS,
    Holiday,
    IanaTimezone,
    NewIanaTimezone,
    check_new_timezone,
    normalise_weekly_hours,
)
from shared.http.json_types import JsonBool, JsonFloat, JsonInt
from shared.http.problems import field_errors

TEAM_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
Skill = Field(min_length=1, max_length=50, pattern=r"^\S(.*\S)?$")
LANGUAGE = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$"  # ISO 639 code, optionally with a region


class ScheduleDoc(BaseModel):
    """Shifts that give the team's capacity: agents on shift x ``tickets_per_agent``.

    Shifts use the business calendar's weekly-hours format; overlapping shifts add up.
    """

    model_config = ConfigDict(extra="forbid")

    timezone: IanaTimezone = "UTC"
    tickets_per_agent: JsonFloat = Field(gt=0, le=10_000, description="Open tickets one agent carries.")
    shifts: list[Shift] = Field(min_length=1, max_length=100)
    holidays: list[Holiday] = Field(default_factory=list, max_length=1_000)

    @model_validator(mode="after")
    def _as_team_schedule(self) -> ScheduleDoc:
        self.for_team("check")  # the router builds exactly this; fail here, not at routing time
        return self

    def for_team(self, team: str, active: bool = True) -> TeamSchedule:
        return TeamSchedule(team=team, active=active, **self.model_dump())


# Intervals a schedule's shifts may hold in all: 100 shifts of two intervals every day, and more.
# Each router reads every schedule for every batch, so the bound is on what a batch pays.
MAX_SCHEDULE_INTERVALS = 2_000


def _bounded(raw: Any) -> Any:
    """Refuse a schedule with more intervals than a day or a schedule may hold (as a business
    calendar may), counted on the request before it is parsed: parsing a few hundred thousand
    intervals took seconds. Only what is given is bounded: a stored schedule still reads back.
    Anything malformed is left to the model, which names the field."""
    shifts = raw.get("shifts") if isinstance(raw, dict) else None
    if not isinstance(shifts, list):
        return raw
    total = 0
    for index, shift in enumerate(shifts):
        try:
            hours = normalise_weekly_hours(shift.get("hours") if isinstance(shift, dict) else None)
        except ValueError:
            continue
        if not isinstance(hours, dict):
            continue
        for day, intervals in hours.items():
            if len(intervals) > MAX_DAY_INTERVALS:
                many = f"at most {MAX_DAY_INTERVALS} intervals a day, got {len(intervals)}"
                raise ValueError(f"shifts/{index}/hours/{day}: {many}")
            total += len(intervals)
    if total > MAX_SCHEDULE_INTERVALS:
        raise ValueError(
            f"at most {MAX_SCHEDULE_INTERVALS} intervals in all shifts (days expanded), got {total}"
        )
    return raw


class GivenScheduleDoc(ScheduleDoc):
    """A schedule as a request gives it: its zone an IANA name (a stored one still reads back)."""

    timezone: NewIanaTimezone = "UTC"


# A schedule as a request gives it (bounded); responses use ScheduleDoc as stored.
GivenSchedule = Annotated[GivenScheduleDoc | None, BeforeValidator(_bounded)]


class TeamFields(BaseModel):
    """Everything about a team except its name (a PUT replaces all of these)."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=2_000)
    active: JsonBool = True
    capacity: JsonInt = Field(
        default=50, ge=0, le=100_000, description="Open tickets the team can carry at once."
    )
    skills: list[str] = Field(default_factory=list, max_length=100)
    languages: list[str] = Field(
        default_factory=list, max_length=50, description="ISO 639 codes, e.g. en, de"
    )
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone")
    calendar: str | None = Field(
        default=None, min_length=1, max_length=100, description="Business-hours calendar"
    )
    schedule: GivenSchedule = Field(
        default=None, description="Shift schedule; when set, capacity comes from the agents on shift."
    )

    @field_validator("skills")
    @classmethod
    def _skills(cls, skills: list[str]) -> list[str]:
        cleaned = [s.strip() for s in skills]
        if any(not s or len(s) > 50 for s in cleaned):
            raise ValueError("skills are 1 to 50 characters")
        return list(dict.fromkeys(cleaned))

    @field_validator("languages")
    @classmethod
    def _languages(cls, languages: list[str]) -> list[str]:
        for code in languages:
            if not re.fullmatch(LANGUAGE, code):
                raise ValueError(f"{code!r} is not an ISO 639 language code (e.g. en, de, pt-BR)")
        return list(dict.fromkeys(languages))

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return check_new_timezone(value)


# Label values the metrics service gives a meaning of its own (``services/metrics/backlog/config.py``):
# a team so named would be counted as the triage queue or as the bucket beyond the label cap.
RESERVED_TEAM_NAMES = frozenset({"triage", "other"})


class TeamCreate(TeamFields):
    name: str = Field(min_length=1, max_length=100, pattern=TEAM_NAME)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name in RESERVED_TEAM_NAMES:
            raise ValueError(
                f"{name!r} is reserved: the metrics count tickets without a team (triage) "
                "and beyond their label cap (other) under that name"
            )
        return name


NULLABLE = frozenset({"calendar", "schedule"})


class TeamPatch(BaseModel):
    """Only the keys given change."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=2_000)
    active: JsonBool | None = None
    capacity: JsonInt | None = Field(default=None, ge=0, le=100_000)
    skills: list[str] | None = Field(default=None, max_length=100)
    languages: list[str] | None = Field(default=None, max_length=50)
    timezone: str | None = Field(default=None, max_length=64)
    calendar: str | None = Field(default=None, min_length=1, max_length=100)
    schedule: GivenSchedule = None

    def changes(self) -> dict[str, object]:
        """The given keys, validated with TeamFields' rules (``calendar``/``schedule: null`` clear)."""
        given = self.model_dump(exclude_unset=True)
        nulls = [k for k, v in given.items() if v is None and k not in NULLABLE]
        if nulls:
            raise Invalid(
                "only calendar and schedule may be null",
                [{"field": f"/{k}", "message": "may not be null"} for k in nulls],
            )
        try:
            checked = TeamFields.model_validate(given)
        except ValidationError as exc:
            errors = field_errors(exc.errors())
            raise Invalid("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors) from exc
        return checked.model_dump(mode="json", include=set(given))


class TeamOut(BaseModel):
    name: str
    description: str
    active: bool
    capacity: int
    skills: list[str]
    languages: list[str]
    timezone: str
    calendar: str | None
    schedule: ScheduleDoc | None
    revision: int = Field(
        description='The ETag is W/"team-<name>-<revision>.<generation>"; the generation is drawn '
        "when the team is created, so no ETag of a deleted team matches one created after it."
    )
    created_at: datetime
    updated_at: datetime
