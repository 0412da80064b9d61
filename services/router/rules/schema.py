"""Pydantic models of a rule set: what the REST API accepts, the DB stores and YAML round-trips.

Conditions are one model with optional keys rather than a tagged union: a union would insert
its tag into every error location, while here ``loc`` mirrors the document exactly
(``rules.3.when.all.0.op``) and the REST layer can hand it back as-is.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from services.router.sla.calendar import check_timezone
from services.router.sla.policy import MAX_POLICY_NAME
from shared.events import Priority, parse_priority
from shared.http.json_types import JsonBool, refuse_bool

from .fields import ALL_OPS, OPS_BY_KIND, field_kind, normalise_value, parse_level

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
TeamName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")]
MAX_DEPTH = 16  # nesting deeper than this is a mistake and would make evaluation recursive-heavy
MAX_WEIGHT = 1_000_000  # weights are relative shares; bounded so that a pool's sum stays finite
# Finite: JSON has no infinity, so one would be stored as null and the stored set would not load.
# The boolean check wraps the constraints, so an infinity is still told it is not finite.
Weight = Annotated[float, Field(gt=0, le=MAX_WEIGHT, allow_inf_nan=False), BeforeValidator(refuse_bool)]


# Validation context for documents read back from the database (``RuleSet.model_validate(doc,
# context=STORED)``): checks added after a version was saved must not make it unreadable, or
# routers could no longer load the live rule set. Only saving applies them.
STORED: dict[str, Any] = {"stored": True}


def validate_timezone(value: str | None) -> str | None:
    return None if value is None else check_timezone(value)


class Condition(BaseModel):
    """``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}`` or a leaf ``{field, op, value}``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    all_: list[Condition] | None = Field(default=None, alias="all", min_length=1, max_length=500)
    any_: list[Condition] | None = Field(default=None, alias="any", min_length=1, max_length=500)
    not_: Condition | None = Field(default=None, alias="not")
    field: str | None = None
    op: str | None = None
    # Before value: validators see earlier fields only, and a regex compiles per case mode.
    case_sensitive: JsonBool = False
    value: Any = None

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str | None) -> str | None:
        if name is None:  # an explicit null is the key left out; _one_shape reports what is missing
            return None
        if field_kind(name) is None:
            raise ValueError(f"unknown field {name!r} (custom fields are written custom.<name>)")
        return name

    @field_validator("op")
    @classmethod
    def _op_fits_field(cls, op: str, info: ValidationInfo) -> str:
        if op not in ALL_OPS:
            raise ValueError(f"unknown operator {op!r}; expected one of {sorted(ALL_OPS)}")
        kind = field_kind(info.data.get("field") or "")
        if kind is not None and op not in OPS_BY_KIND[kind]:
            allowed = sorted(OPS_BY_KIND[kind])
            raise ValueError(f"operator {op!r} does not apply to {kind.value} field; use one of {allowed}")
        return op

    @field_validator("value")
    @classmethod
    def _value_fits(cls, value: Any, info: ValidationInfo) -> Any:
        # Validators run in declaration order, so field/op are already checked when present.
        kind = field_kind(info.data.get("field") or "")
        op = info.data.get("op")
        if kind is None or op is None:
            return value  # the missing/invalid field or op is reported on its own key
        stored = bool(info.context and info.context.get("stored"))
        return normalise_value(kind, op, value, bool(info.data.get("case_sensitive")), stored=stored)

    @model_validator(mode="after")
    def _one_shape(self) -> Condition:
        groups = [k for k, v in (("all", self.all_), ("any", self.any_), ("not", self.not_)) if v is not None]
        leaf = self.field is not None or self.op is not None
        if len(groups) + leaf != 1:
            raise ValueError("a condition is exactly one of all / any / not / a leaf {field, op, value}")
        if leaf:
            if self.field is None or self.op is None:
                raise ValueError("a leaf condition needs both 'field' and 'op'")
            if self.value is None and self.op != "exists":
                raise ValueError(f"'value' is required for operator {self.op!r}")
        if self.depth() > MAX_DEPTH:
            raise ValueError(f"conditions nested deeper than {MAX_DEPTH} levels")
        return self

    def depth(self) -> int:
        children = self.children()
        return 1 + max((c.depth() for c in children), default=0)

    def children(self) -> list[Condition]:
        if self.all_ is not None:
            return self.all_
        if self.any_ is not None:
            return self.any_
        return [self.not_] if self.not_ is not None else []


Condition.model_rebuild()  # resolve the self-reference


class Pool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teams: list[TeamName] = Field(min_length=1, max_length=100)
    strategy: Literal["least_loaded", "round_robin", "weighted"] = "least_loaded"
    weights: dict[str, Weight] | None = None

    @model_validator(mode="after")
    def _weights_fit(self) -> Pool:
        if len(set(self.teams)) != len(self.teams):
            raise ValueError("pool teams must be unique")
        if self.strategy == "weighted":
            if not self.weights:
                raise ValueError("strategy 'weighted' needs weights for the teams")
            missing = [t for t in self.teams if t not in self.weights]
            if missing:
                raise ValueError(f"weights missing for teams {missing}")
        if self.weights:
            unknown = sorted(set(self.weights) - set(self.teams))
            if unknown:
                raise ValueError(f"weights given for teams not in the pool: {unknown}")
        return self


class Actions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assign_team: TeamName | None = None
    assign_pool: Pool | None = None
    route_to_triage: JsonBool = False
    set_priority: Priority | None = None
    set_urgency: int | None = None
    set_impact: int | None = None
    add_tags: list[str] = Field(default_factory=list, max_length=50)
    sla_policy: str | None = Field(default=None, min_length=1, max_length=MAX_POLICY_NAME)
    # True: a matching rule ends evaluation. False lets later rules still add tags / assign.
    stop: JsonBool = True

    @field_validator("set_priority", mode="before")
    @classmethod
    def _priority_alias(cls, value: Any) -> Any:
        if isinstance(value, str | int) and not isinstance(value, bool):
            return parse_priority(value)
        return value

    @field_validator("set_urgency", "set_impact", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return None if value is None else parse_level(value)

    @field_validator("add_tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        # Same normalisation as TicketSnapshot.tags, so added tags compare equal to source tags.
        return list(dict.fromkeys(t.strip().lower()[:100] for t in tags if t.strip()))

    @model_validator(mode="after")
    def _consistent(self) -> Actions:
        targets = [self.assign_team is not None, self.assign_pool is not None, self.route_to_triage]
        if sum(targets) > 1:
            raise ValueError("use only one of assign_team, assign_pool, route_to_triage")
        if not self.model_fields_set:
            raise ValueError("actions is empty; give at least one action (or stop: true)")
        return self

    @property
    def assigns(self) -> bool:
        return self.assign_team is not None or self.assign_pool is not None or self.route_to_triage


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: RuleId
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2_000)
    enabled: JsonBool = True
    timezone: str | None = None  # overrides the rule set's for time_of_day / weekday
    when: Condition | None = None  # absent: the rule always matches
    actions: Actions

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return validate_timezone(value)


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list, max_length=5_000)
    default_team: TeamName | None = None  # when nothing assigns; without it: triage
    timezone: str = "UTC"
    version: int | None = None  # set by the storage layer

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        validate_timezone(value)
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        seen: dict[str, int] = {}
        duplicates: list[InitErrorDetails] = []
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                message = f"duplicate rule id {rule.id!r} (also the id of rule {seen[rule.id]})"
                error = PydanticCustomError("duplicate_rule_id", message)
                duplicates.append(InitErrorDetails(type=error, loc=("rules", index, "id"), input=rule.id))
            seen.setdefault(rule.id, index)
        if duplicates:
            # A ValidationError keeps each location (a ValueError would be reported at the rule
            # set's root); pydantic prefixes them with where this rule set sits.
            raise ValidationError.from_exception_data(type(self).__name__, duplicates)
        return self
