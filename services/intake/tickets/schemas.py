"""The native JSON ticket accepted by ``POST /v1/tickets``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.db.base import convertible_to_utc
from shared.events import Requester, TicketSnapshot, TicketStatus, parse_priority

NativeStatus = Literal["new", "open", "pending", "on_hold", "solved", "closed", "reopened"]


# The source of the tickets posted without one; no webhook source may take the name.
NATIVE_SOURCE = "api"

_INT_RANGE = (-(2**63), 2**64 - 1)


def _check_integers(value: Any) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise ValueError("integers must fit in 64 bits")
    elif isinstance(value, dict):
        for item in value.values():
            _check_integers(item)
    elif isinstance(value, list):
        for item in value:
            _check_integers(item)


class TicketIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "external_id": "4711",
                    "subject": "Cannot log in to VPN",
                    "description": "Since this morning the VPN rejects my password.",
                    "requester": {"email": "ann@example.com", "name": "Ann"},
                    "priority": "high",
                    "tags": ["vpn"],
                    "channel": "email",
                }
            ]
        },
    )

    external_id: str = Field(min_length=1, max_length=200, pattern=r"^[^\s]+$")
    subject: str = Field(default="", max_length=2_000)
    description: str = Field(default="", max_length=200_000)
    source: str = Field(
        default=NATIVE_SOURCE,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The ticket's system; not the name of a webhook source, configured or deleted (422).",
    )
    requester: Requester = Field(default_factory=Requester)
    priority: str | None = Field(default=None, description="P1-P4 or urgent/high/normal/low")
    tags: list[str] = Field(default_factory=list, max_length=200)
    channel: str | None = Field(default=None, max_length=100)
    status: NativeStatus = "new"
    url: str | None = Field(default=None, max_length=2_000)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("priority")
    @classmethod
    def _known_priority(cls, value: str | None) -> str | None:
        parse_priority(value)  # raises ValueError naming the bad word
        return value

    @field_validator("custom_fields")
    @classmethod
    def _encodable(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_integers(value)  # the event encoder (orjson) takes 64-bit integers only
        return value

    @field_validator("created_at", "updated_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp needs a time zone offset, e.g. 2026-01-01T10:00:00Z")
        # Year 1 at +01:00 has no UTC instant: the router could not store it, on any attempt.
        return None if value is None else convertible_to_utc(value)

    def snapshot(self) -> TicketSnapshot:
        """The ticket as this request says it, and only what it says: the event carries the fields
        the request set (an update of the status alone keeps the ticket's subject and tags; an
        empty list sent clears the tags; no status sent keeps the ticket's, solved or not)."""
        said = self.model_fields_set
        fields: dict[str, Any] = {name: getattr(self, name) for name in _SNAPSHOT_FIELDS if name in said}
        if "status" in said:
            fields["status"] = TicketStatus.OPEN if self.status == "reopened" else TicketStatus(self.status)
        if "priority" in said:
            fields["priority"] = parse_priority(self.priority)
        return TicketSnapshot(external_id=self.external_id, **fields)


# Copied as they are when the request sets them (status and priority are parsed).
_SNAPSHOT_FIELDS = (
    "subject",
    "description",
    "requester",
    "tags",
    "channel",
    "url",
    "created_at",
    "updated_at",
    "custom_fields",
)


class Accepted(BaseModel):
    event_id: str
    ticket_key: str
    delivery: Literal["published", "queued"] | None = Field(description="None for a duplicate")
    duplicate: bool = False
