"""Request and response bodies of the classifier registry API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.http.json_types import JsonInt

# Versions are the ids of classifier_models, an INTEGER column: a larger number matches no model,
# and the database refuses it as a parameter (an overflow, not "not found").
MAX_VERSION = 2**31 - 1


class LabelKind(StrEnum):
    """What a model predicts. Only category and team models take part in routing."""

    CATEGORY = "category"
    TEAM = "team"
    PRIORITY = "priority"


class ClassifierOut(BaseModel):
    """A stored model without its blob."""

    version: int
    name: str
    label_kind: LabelKind
    active: bool
    created_at: datetime
    trained_on: dict[str, Any]
    figures: dict[str, Any]


class ClassifierList(BaseModel):
    items: list[ClassifierOut]


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(default="", max_length=2_000)
    description: str = Field(default="", max_length=200_000)
    label_kind: LabelKind = LabelKind.CATEGORY
    version: JsonInt | None = Field(
        default=None,
        ge=1,
        le=MAX_VERSION,
        description="Try this stored model instead of the active one of label_kind.",
    )


class PredictOut(BaseModel):
    version: int | None  # the model used; None when no model of that kind is active
    label_kind: LabelKind
    label: str | None
    confidence: float | None
    threshold: float | None
    above_threshold: bool
    language: str | None
    urgency: str
    urgency_signals: list[str]
