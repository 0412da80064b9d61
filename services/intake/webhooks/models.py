"""Inputs and outputs of the webhook layer: the raw request, the per-source config, the adapted event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import EventType, TicketSnapshot

AdapterName = Literal["zendesk", "jira", "github", "freshdesk", "intercom", "zammad", "generic", "native"]


@dataclass(frozen=True)
class WebhookRequest:
    """The raw HTTP request. Header names are lower-cased on construction (HTTP headers are
    case-insensitive); ``body`` must be the exact bytes received, since signatures cover them."""

    headers: Mapping[str, str]
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class SourceConfig(BaseModel):
    """One configured source system. ``secrets`` holds the current secret and, during a rotation,
    the next one: a signature valid under either is accepted."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    adapter: AdapterName
    secrets: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1, max_length=2)
    options: dict[str, Any] = Field(default_factory=dict)

    def __repr__(self) -> str:  # keep secrets out of tracebacks and logs
        return f"SourceConfig(name={self.name!r}, adapter={self.adapter!r}, secrets=<{len(self.secrets)}>)"

    __str__ = __repr__


@dataclass(frozen=True)
class AdaptedEvent:
    type: EventType
    snapshot: TicketSnapshot
    occurred_at: datetime
    # What names the change whichever delivery reports it (a Jira comment's id): its event id is
    # derived from it, not from the delivery, so that two webhooks reporting the same change (a
    # comment event and an issue event carrying it) publish one event id, which consumers' idempotency
    # keeps once. None: the delivery and the event's index name it.
    identity: str | None = None
