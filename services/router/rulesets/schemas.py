"""Request and response bodies of the rules API (the rule set itself is rules.RuleSet)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.router.rules import RuleSet
from shared.http.json_types import JsonBool


class RulePatch(BaseModel):
    """A JSON merge patch of one rule: given keys replace, objects merge, null removes."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2_000)
    enabled: JsonBool | None = None
    timezone: str | None = None
    when: dict[str, Any] | None = Field(default=None, description="A condition; null: always matches")
    actions: dict[str, Any] | None = Field(default=None, description="Merged into the rule's actions")

    def patch(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class VersionOut(BaseModel):
    version: int
    author: str
    created_at: datetime
    comment: str
    diff: str = Field(description="Summary of the change against the previous version")


class VersionDocument(VersionOut):
    ruleset: RuleSet


class VersionDiff(BaseModel):
    version: int
    against: int
    diff: dict[str, Any] = Field(description="added, removed, changed (rule -> keys), moved, settings")
    text: str
