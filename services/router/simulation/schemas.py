"""Bodies of POST /v1/routing/simulate and /v1/routing/replay."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.router.rules import RuleSet
from shared.db.base import UtcAwareDatetime
from shared.events import TicketSnapshot
from shared.http.json_types import JsonFloat, JsonInt

MAX_REPLAY = 10_000


class SimulateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket: TicketSnapshot
    source: str = Field(default="api", min_length=1, max_length=100)
    ruleset: RuleSet | None = Field(default=None, description="A draft to try instead of the live rule set")
    now: UtcAwareDatetime | None = Field(
        default=None, description="Evaluate as of this instant (default: now)"
    )
    language: str | None = Field(
        default=None, max_length=16, description="As the language detector would say"
    )
    category: str | None = Field(default=None, max_length=100, description="As the classifier would say")
    category_confidence: JsonFloat | None = Field(default=None, ge=0, le=1)


class ConditionFailureOut(BaseModel):
    path: str
    field: str
    op: str
    expected: str
    actual: str
    reason: str


class TraceStep(BaseModel):
    index: int = Field(description="Position in the rule set")
    rule_id: str
    rule_name: str
    matched: bool
    stopped: bool = Field(description="This rule ended evaluation")
    failure: ConditionFailureOut | None = Field(description="The first condition that failed, and why")


class PoolOut(BaseModel):
    teams: list[str]
    strategy: str
    weights: dict[str, float] | None


class DecisionOut(BaseModel):
    target: str = Field(description="team name, pool:<a>|<b>, or triage")
    team: str | None
    pool: PoolOut | None
    triage: bool
    priority: str | None
    urgency: int | None
    impact: int | None
    tags: list[str]
    sla_policy: str | None
    rule_id: str | None = Field(description="The rule that chose the target (null: default team or triage)")
    rule_name: str | None
    matched_rules: list[str]
    used_default: bool
    reasons: list[str]


class SimulateResponse(BaseModel):
    ruleset_version: int | None = Field(description="The live version used; null for a draft")
    draft: bool
    decision: DecisionOut
    trace: list[TraceStep] = Field(description="Every rule evaluated, in order, until one stopped evaluation")
    warnings: list[str] = Field(description="E.g. a draft naming teams that do not exist")


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ruleset: RuleSet = Field(description="The draft to compare with the live rule set (or `against`)")
    against: JsonInt | None = Field(
        default=None, ge=1, le=2**31 - 1, description="A stored version; default: live"
    )
    last: JsonInt | None = Field(default=None, ge=1, le=MAX_REPLAY, description="The newest N stored tickets")
    since: UtcAwareDatetime | None = Field(default=None, description="Tickets created at or after")
    until: UtcAwareDatetime | None = Field(default=None, description="Tickets created before")

    @model_validator(mode="after")
    def _one_selection(self) -> ReplayRequest:
        window = self.since is not None or self.until is not None
        if (self.last is None) == (not window):
            _refuse("last", "give either last, or a window (since and/or until), not both", self.last)
        if self.since is not None and self.until is not None and self.until <= self.since:
            _refuse("until", "until must be after since", self.until)
        return self


def _refuse(field: str, message: str, value: object) -> None:
    """A ValidationError at ``field``: a ValueError here would be reported at the body's root."""
    error = PydanticCustomError("replay_selection", message)
    raise ValidationError.from_exception_data(
        ReplayRequest.__name__, [InitErrorDetails(type=error, loc=(field,), input=value)]
    )


class Transition(BaseModel):
    before: str
    after: str
    count: int


class ReplayExample(BaseModel):
    ticket_key: str | None
    before: str
    after: str
    rule_before: str | None
    rule_after: str | None


class ReplayResponse(BaseModel):
    against_version: int | None
    total: int
    changed: int = Field(description="Tickets whose target (team, pool or triage) would change")
    skipped: int = Field(description="Stored tickets whose snapshot could not be read")
    truncated: bool = Field(
        description=f"The window held more than {MAX_REPLAY} tickets; the newest were used"
    )
    before: dict[str, int]
    after: dict[str, int]
    transitions: list[Transition]
    examples: list[ReplayExample]
    text: str
