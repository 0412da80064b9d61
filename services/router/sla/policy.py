"""SLA policies: per-priority targets on a named business calendar, plus escalation actions.

Policies are plain JSON-serialisable models; persistence and evaluation of ``applies_when``
(a rule-engine condition tree) belong to the router, which passes a predicate to
:func:`select_policy`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_serializer, field_validator

from services.router.sla.calendar import ALWAYS_OPEN, BusinessCalendar
from shared.events import Priority, TicketStatus
from shared.http.json_types import JsonFloat, refuse_bool

MAX_TARGET = timedelta(days=365)
# The longest name of a new policy: what a rule's ``actions.sla_policy`` can name. The model allows
# longer ones (up to 200), which earlier versions stored and the routers must still load.
MAX_POLICY_NAME = 100
_MAX_TARGET_MINUTES = MAX_TARGET // timedelta(minutes=1)
# Actions per escalation (on_warning, on_breach): checked on save (slas/service.validate_document),
# not in the model, so that a longer list stored before the check still loads.
MAX_ESCALATION_ACTIONS = 100


def _minutes_if_number(value: Any) -> Any:
    # Pydantic reads a bare number as seconds; policies are written in minutes. A boolean is no
    # number: lax mode read ``true`` as one second.
    refuse_bool(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Checked before converting: timedelta raises OverflowError (not a validation error) on
        # infinity and on anything beyond ~2.7 million years. An int is finite (and isfinite
        # would overflow on a huge one).
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("an SLA target must be a finite number of minutes")
        if value <= 0:
            raise ValueError("an SLA target must be positive")
        if value > _MAX_TARGET_MINUTES:
            raise ValueError(f"an SLA target is at most {_MAX_TARGET_MINUTES} minutes (365 days)")
        return timedelta(minutes=value)
    return value


Duration = Annotated[timedelta, BeforeValidator(_minutes_if_number)]


class PriorityTargets(BaseModel):
    """Business-time targets of one priority; ``None`` means no target. Numbers are minutes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    first_response: Duration | None = None
    resolution: Duration | None = None

    @field_validator("first_response", "resolution")
    @classmethod
    def _bounded(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("an SLA target must be positive")
        # Deadlines are computed for every routed ticket; far beyond a year they overflow datetime.
        if value is not None and value > MAX_TARGET:
            raise ValueError(f"an SLA target is at most {MAX_TARGET.days} days")
        return value


class RaisePriority(BaseModel):
    """Raise the priority one step (P4 -> P3 -> P2 -> P1; P1 stays)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    action: Literal["raise_priority"] = "raise_priority"


class ReassignTo(BaseModel):
    """Reassign to an active team; the admin API and ``ticketctl`` check that it is one."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    action: Literal["reassign_to"] = "reassign_to"
    team: str = Field(min_length=1, max_length=100)  # a team name (teams.name is varchar(100))


class AddTag(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    action: Literal["add_tag"] = "add_tag"
    tag: str = Field(min_length=1, max_length=100)


class Notify(BaseModel):
    """Notify a configured webhook / write-back target, by name."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    action: Literal["notify"] = "notify"
    target: str = Field(min_length=1, max_length=300)


EscalationAction = Annotated[RaisePriority | ReassignTo | AddTag | Notify, Field(discriminator="action")]

DEFAULT_PAUSING_STATUSES: frozenset[TicketStatus] = frozenset({TicketStatus.PENDING, TicketStatus.ON_HOLD})


class SlaPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    calendar: str = ALWAYS_OPEN  # a BusinessCalendar name; "24x7" needs no definition
    targets: dict[Priority, PriorityTargets] = Field(default_factory=dict)
    # Rule-engine condition tree (plain JSON); None matches every ticket.
    applies_when: dict[str, Any] | None = None
    warning_share: JsonFloat = Field(default=0.75, gt=0, lt=1)
    pausing_statuses: frozenset[TicketStatus] = DEFAULT_PAUSING_STATUSES
    on_warning: list[EscalationAction] = Field(default_factory=list)
    on_breach: list[EscalationAction] = Field(default_factory=list)

    @field_validator("pausing_statuses")
    @classmethod
    def _no_resolved(cls, statuses: frozenset[TicketStatus]) -> frozenset[TicketStatus]:
        # Resolved statuses stop the clock; letting them "pause" would blur the two.
        if any(s.is_resolved for s in statuses):
            raise ValueError("solved/closed stop the clock and cannot be pausing statuses")
        return statuses

    @field_serializer("pausing_statuses", when_used="json")
    def _in_status_order(self, statuses: frozenset[TicketStatus]) -> list[str]:
        # A frozenset iterates in hash order, which differs per process (str hashes are salted):
        # the same policy saved by two processes would differ (a diff, a recheck of its tickets).
        return [status.value for status in TicketStatus if status in statuses]

    def targets_for(self, priority: Priority) -> PriorityTargets:
        return self.targets.get(priority, PriorityTargets())

    def actions_for(self, kind: Literal["warning", "breach"]) -> list[EscalationAction]:
        return list(self.on_warning if kind == "warning" else self.on_breach)


def select_policy(
    policies: Iterable[SlaPolicy], matches: Callable[[dict[str, Any]], bool]
) -> SlaPolicy | None:
    """The first policy whose ``applies_when`` holds (``None`` always holds); order is priority."""
    for policy in policies:
        if policy.applies_when is None or matches(policy.applies_when):
            return policy
    return None


def resolve_calendar(policy: SlaPolicy, calendars: Mapping[str, BusinessCalendar]) -> BusinessCalendar:
    """The policy's calendar; ``"24x7"`` falls back to an always-open UTC calendar."""
    found = calendars.get(policy.calendar)
    if found is not None:
        return found
    if policy.calendar == ALWAYS_OPEN:
        return BusinessCalendar.always_open()
    raise KeyError(f"SLA policy {policy.name!r} uses unknown calendar {policy.calendar!r}")
