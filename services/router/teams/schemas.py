"""Request and response bodies of the teams API."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.router.assignment.capacity import Shift, TeamSchedule
from services.router.errors import Invalid
from services.router.rules.schema import validate_timezone
from services.router.sla.calendar import Holiday, IanaTimezone
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
    tickets_per_agent: float = Field(gt=0, le=10_000, description="Open tickets one agent carries.")
    shifts: list[Shift] = Field(min_length=1, max_length=100)
    holidays: list[Holiday] = Field(default_factory=list, max_length=1_000)

    @model_validator(mode="after")
    def _as_team_schedule(self) -> ScheduleDoc:
        self.for_team("check")  # the router builds exactly this; fail here, not at routing time
        return self

    def for_team(self, team: str, active: bool = True) -> TeamSchedule:
        return TeamSchedule(team=team, active=active, **self.model_dump())


class TeamFields(BaseModel):
    """Everything about a team except its name (a PUT replaces all of these)."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=2_000)
    active: bool = True
    capacity: int = Field(
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
    schedule: ScheduleDoc | None = Field(
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
            if not re.match(LANGUAGE, code):
                raise ValueError(f"{code!r} is not an ISO 639 language code (e.g. en, de, pt-BR)")
        return list(dict.fromkeys(languages))

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        validate_timezone(value)
        return value


class TeamCreate(TeamFields):
    name: str = Field(min_length=1, max_length=100, pattern=TEAM_NAME)


NULLABLE = frozenset({"calendar", "schedule"})


class TeamPatch(BaseModel):
    """Only the keys given change."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=2_000)
    active: bool | None = None
    capacity: int | None = Field(default=None, ge=0, le=100_000)
    skills: list[str] | None = Field(default=None, max_length=100)
    languages: list[str] | None = Field(default=None, max_length=50)
    timezone: str | None = Field(default=None, max_length=64)
    calendar: str | None = Field(default=None, min_length=1, max_length=100)
    schedule: ScheduleDoc | None = None

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
