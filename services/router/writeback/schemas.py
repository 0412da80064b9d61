"""Request and response bodies of the write-back API. No response carries a target's secret."""

from __future__ import annotations

from datetime import datetime

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from services.router.writeback.queue import WRITEBACK_KINDS


class TargetIn(BaseModel):
    """A whole target: POST creates one, PUT replaces every field (the secret included)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=200, pattern=r"^\S(.*\S)?$", description="What `notify` actions name."
    )
    source: str = Field(min_length=1, max_length=100, description="Whose tickets' events it receives.")
    url: AnyHttpUrl
    secret: str = Field(min_length=16, max_length=500, description="HMAC key; write-only.")
    enabled: bool = True
    event_kinds: list[str] = Field(default_factory=list, description="Empty: every kind.")

    @field_validator("event_kinds")
    @classmethod
    def _kinds(cls, kinds: list[str]) -> list[str]:
        unknown = sorted(set(kinds) - set(WRITEBACK_KINDS))
        if unknown:
            raise ValueError(f"unknown event kinds {unknown}; use {list(WRITEBACK_KINDS)}")
        return kinds


class TargetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    source: str
    url: str
    enabled: bool
    event_kinds: list[str]
    revision: int = Field(description='The ETag is W/"writeback-target-<id>-<revision>".')
    created_at: datetime
    updated_at: datetime


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    target_id: int
    event_id: str
    kind: str
    ticket_key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
