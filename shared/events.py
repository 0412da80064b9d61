"""The event contract shared by every service.

Every message on every topic is an :class:`EventEnvelope` serialised as JSON and keyed by
``ticket_key``, so that all events of one ticket land in one partition, in order.

Two families of events exist:

* **ticket events** (topic ``tickets``): what a source system told us about a ticket. Intake
  produces them; the payload is a :class:`TicketSnapshot`, the ticket as the source sees it
  now (plus an optional comment). Consumers apply them with upsert semantics, so the exact
  ``type`` is informative rather than load-bearing.
* **routing events** (topic ``routing``): what the router decided. The payload is a
  :class:`RoutingPayload` carrying the complete :class:`TicketState` after the decision, so a
  consumer can apply any routing event by replacing its copy of the ticket: redelivery and
  reordering across tickets cannot corrupt derived state.

Bump ``SCHEMA_VERSION`` only for incompatible changes; consumers reject versions they do not
know by sending the message to the dead-letter topic.
"""

from __future__ import annotations

import hashlib
import json
import operator
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from shared.db.base import convertible_to_utc
from shared.db.storable import ESCAPED_NUL, replace_nul

SCHEMA_VERSION = 1

# Namespace for deterministic event ids: an event derived from another one (a routing decision
# derived from a ticket event) gets the same id every time it is derived, which is what makes
# re-publishing after a crash harmless.
_EVENT_NAMESPACE = uuid.UUID("6f1d8e0a-8a43-4f7e-9d3e-2f4b1c0e7a55")


_EVENT_NAMESPACE_BYTES = _EVENT_NAMESPACE.bytes


def derived_event_id(*parts: str) -> uuid.UUID:
    """``uuid.uuid5(_EVENT_NAMESPACE, "|".join(parts))``, the same bytes (a test compares them),
    without uuid5's per-call import and namespace conversion: a third less, once per routing event."""
    digest = hashlib.sha1(_EVENT_NAMESPACE_BYTES + "|".join(parts).encode()).digest()
    return uuid.UUID(bytes=digest[:16], version=5)


def utc_now() -> datetime:
    return datetime.now(UTC)


def assume_utc(value: datetime) -> datetime:
    """A time without a zone means UTC (what sources that send no offset mean)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def utc_instant(value: datetime) -> datetime:
    """``assume_utc``, refusing a time whose UTC instant lies outside datetime's range (year 1 at
    +14:00, year 9999 at -14:00): a consumer storing it fails converting it, on every attempt."""
    return convertible_to_utc(assume_utc(value))


# A naive time compared with an aware one raises, which would make every later event of the
# ticket fail: the contract's times are all aware, and each has a UTC instant.
UtcDatetime = Annotated[datetime, AfterValidator(utc_instant)]


class TicketStatus(StrEnum):
    """Normalised lifecycle status; every adapter maps its vendor's statuses onto these."""

    NEW = "new"
    OPEN = "open"
    PENDING = "pending"  # waiting on the requester
    ON_HOLD = "on_hold"  # waiting on a third party
    SOLVED = "solved"
    CLOSED = "closed"

    @property
    def is_resolved(self) -> bool:
        return self in (TicketStatus.SOLVED, TicketStatus.CLOSED)


class Priority(StrEnum):
    P1 = "P1"  # critical
    P2 = "P2"  # high
    P3 = "P3"  # normal
    P4 = "P4"  # low


# Vendor words for priority, mapped once here so adapters and the native API agree.
PRIORITY_ALIASES: dict[str, Priority] = {
    "p1": Priority.P1,
    "urgent": Priority.P1,
    "critical": Priority.P1,
    "highest": Priority.P1,
    "blocker": Priority.P1,
    "4": Priority.P1,
    "p2": Priority.P2,
    "high": Priority.P2,
    "major": Priority.P2,
    "3": Priority.P2,
    "p3": Priority.P3,
    "normal": Priority.P3,
    "medium": Priority.P3,
    "2": Priority.P3,
    "p4": Priority.P4,
    "low": Priority.P4,
    "lowest": Priority.P4,
    "minor": Priority.P4,
    "trivial": Priority.P4,
    "1": Priority.P4,
}


def parse_priority(value: str | int | None) -> Priority | None:
    if value is None or value == "":
        return None
    found = PRIORITY_ALIASES.get(str(value).strip().lower())
    if found is None:
        raise ValueError(f"unknown priority {value!r}; use P1-P4 or urgent/high/normal/low")
    return found


class EventType(StrEnum):
    # ticket events (intake -> tickets topic)
    TICKET_CREATED = "ticket.created"
    TICKET_UPDATED = "ticket.updated"
    TICKET_COMMENTED = "ticket.commented"
    TICKET_STATUS_CHANGED = "ticket.status_changed"
    TICKET_REASSIGNED_EXTERNALLY = "ticket.reassigned_externally"
    # routing events (router -> routing topic)
    TICKET_ROUTED = "ticket.routed"
    TICKET_STATE_CHANGED = "ticket.state_changed"
    TICKET_RESOLVED = "ticket.resolved"
    TICKET_REOPENED = "ticket.reopened"
    SLA_WARNING = "sla.warning"
    SLA_BREACHED = "sla.breached"
    TICKET_ESCALATED = "ticket.escalated"


TICKET_EVENT_TYPES = frozenset(
    {
        EventType.TICKET_CREATED,
        EventType.TICKET_UPDATED,
        EventType.TICKET_COMMENTED,
        EventType.TICKET_STATUS_CHANGED,
        EventType.TICKET_REASSIGNED_EXTERNALLY,
    }
)


class Requester(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=300)
    organization: str | None = Field(default=None, max_length=300)
    customer_tier: str | None = Field(default=None, max_length=50)

    @property
    def domain(self) -> str | None:
        if self.email and "@" in self.email:
            return self.email.rsplit("@", 1)[1].lower()
        return None


class Comment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(max_length=100_000)
    author: str | None = Field(default=None, max_length=320)
    public: bool = True
    # True when the comment comes from the support side: the first one is the first response.
    from_agent: bool = False


# The most tags a ticket holds (an escalation's add_tag adds none past it).
MAX_TAGS = 200


class TicketSnapshot(BaseModel):
    """A ticket as its source system describes it right now (normalised)."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=200)
    subject: str = Field(default="", max_length=2_000)
    description: str = Field(default="", max_length=200_000)
    status: TicketStatus = TicketStatus.NEW
    priority: Priority | None = None
    requester: Requester = Field(default_factory=Requester)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    channel: str | None = Field(default=None, max_length=100)
    url: str | None = Field(default=None, max_length=2_000)
    created_at: UtcDatetime | None = None
    updated_at: UtcDatetime | None = None
    # The team/group the source system has the ticket assigned to, when it says so.
    external_assignee_group: str | None = Field(default=None, max_length=300)
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    comment: Comment | None = None

    @field_validator("tags")
    @classmethod
    def _normalise_tags(cls, tags: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for tag in tags:
            cleaned = tag.strip().lower()
            if cleaned:
                seen.setdefault(cleaned[:100], None)
        return list(seen)


class SlaState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: str | None = None
    first_response_due: datetime | None = None
    # When the router's escalation scanner fires (or fired, this cycle) the warning of each
    # target: on the policy's calendar, after pauses, at the policy's warning share. Set together
    # with its due instant; None from routers older than these fields (consumers then estimate).
    first_response_warning_at: UtcDatetime | None = None
    resolution_due: datetime | None = None
    resolution_warning_at: UtcDatetime | None = None
    first_responded_at: datetime | None = None
    warning_sent: bool = False
    breached: bool = False  # either target, in any cycle (sticky)
    # The router's verdict on each target: past its deadline while its clock ran (a reply or solve
    # judged by its own instant), or its breach fired. Sticky for the ticket, like ``breached``;
    # the metrics' breach counter counts these. None from routers older than these fields.
    first_response_breached: bool | None = None
    resolution_breached: bool | None = None
    paused: bool = False


class TicketState(BaseModel):
    """The router's complete view of a ticket after a decision: enough to rebuild any gauge."""

    model_config = ConfigDict(extra="forbid")

    ticket_key: str
    source: str
    # Grows by one with every decision on this ticket: consumers ignore a state older than the
    # one they hold, so duplicates or a re-published outbox can never move a ticket backwards.
    revision: int = 0
    status: TicketStatus
    team: str | None  # None: in the triage queue
    priority: Priority
    category: str | None = None
    category_confidence: float | None = None
    language: str | None = None
    created_at: datetime
    resolved_at: datetime | None = None
    routed_at: datetime | None = None
    sla: SlaState = Field(default_factory=SlaState)


class RoutingPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: TicketState
    previous_team: str | None = None
    previous_status: TicketStatus | None = None
    previous_priority: Priority | None = None
    ruleset_version: int | None = None
    rule: str | None = None
    reasons: list[str] = Field(default_factory=list)
    caused_by: uuid.UUID | None = None  # the ticket event this decision answers
    # True on both events of a ticket first seen already solved (a history import, a helpdesk's
    # backfill): routed open, then resolved at the source's solved instant, in one decision. It was
    # routed by no one while it waited: consumers count no routing and no time to route for it (the
    # routed state alone looks like a live routing). Written only when true, so that the events of
    # every other decision stay readable by consumers older than the field; False when absent.
    history_import: bool = Field(default=False, exclude_if=operator.not_)


TICKET_KEY_MAX = 300  # the ticket_key columns are varchar(300)


class EventEnvelope(BaseModel):
    """The versioned envelope around every message."""

    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: EventType
    schema_version: Literal[1] = 1  # SCHEMA_VERSION
    ticket_key: str = Field(min_length=1, max_length=TICKET_KEY_MAX)
    occurred_at: UtcDatetime
    produced_at: UtcDatetime = Field(default_factory=utc_now)
    source: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any]

    def ticket(self) -> TicketSnapshot:
        return TicketSnapshot.model_validate(self.payload)

    def routing(self) -> RoutingPayload:
        return RoutingPayload.model_validate(self.payload)

    def to_bytes(self) -> bytes:
        # pydantic-core writes the JSON directly: the same bytes as orjson over model_dump(mode=
        # "json") without the intermediate dicts, and integers beyond 64 bits do not fail.
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def from_bytes(cls, raw: bytes) -> EventEnvelope:
        """Decode and validate; raises ``ValueError`` (incl. pydantic's) for poison input."""
        return cls.decode(raw)[0]

    @classmethod
    def decode(cls, raw: bytes) -> tuple[EventEnvelope, TicketSnapshot | None]:
        """``from_bytes``, with the snapshot a ticket event's payload validated to (None for a
        routing event), so that a consumer need not validate the payload a second time."""
        if ESCAPED_NUL in raw:  # JSON holds U+0000 only escaped; rare, so the fast path is one scan
            raw = _without_nul(raw)
        envelope = cls.model_validate_json(raw)
        # Validate the payload against its type now, so a bad payload is poison here and
        # never a crash deep inside a handler.
        if envelope.type in TICKET_EVENT_TYPES:
            snapshot = envelope.ticket()
            # The router stores the ticket under the key and writes back to the payload's id: apart,
            # a decision would go to another ticket of the helpdesk than the one it was made for.
            if envelope.ticket_key != ticket_key(envelope.source, snapshot.external_id):
                raise ValueError(
                    f"ticket_key {envelope.ticket_key[:100]!r} is not source:external_id "
                    f"({envelope.source[:40]!r}, {snapshot.external_id[:100]!r})"
                )
            return envelope, snapshot
        envelope.routing()
        return envelope, None


def _without_nul(raw: bytes) -> bytes:
    """The event with every U+0000 replaced by U+FFFD. Vendors' tickets can hold one (binary pasted
    into a description) and intake passes their text on as it came, but PostgreSQL stores it neither
    in text nor in JSONB: a consumer that stores the ticket would fail on the event for good. The
    standard library reads what the model reads (integers beyond 64 bits included)."""
    try:
        return json.dumps(replace_nul(json.loads(raw)), ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        return raw  # not JSON, or nested beyond what validation reads: validation says so


def ticket_key(source: str, external_id: str) -> str:
    """The partition key: one ticket of one source system."""
    return f"{source}:{external_id}"


def external_id_too_long(source: str, external_id: str) -> str | None:
    """Why ``external_id`` cannot make a ticket key with ``source`` (None when it can): each may be at
    its own limit, but together with the colon they must fit :data:`TICKET_KEY_MAX`."""
    room = TICKET_KEY_MAX - len(source) - 1
    if len(external_id) <= room:
        return None
    return (
        f"at most {room} characters from source {source[:40]!r}: the ticket key "
        f"(source:external_id) is limited to {TICKET_KEY_MAX}"
    )


def ticket_event(
    event_type: EventType,
    source: str,
    snapshot: TicketSnapshot,
    occurred_at: datetime | None = None,
    event_id: uuid.UUID | None = None,
) -> EventEnvelope:
    return EventEnvelope(
        event_id=event_id or uuid.uuid4(),
        type=event_type,
        ticket_key=ticket_key(source, snapshot.external_id),
        occurred_at=occurred_at or snapshot.updated_at or utc_now(),
        source=source,
        payload=event_payload(snapshot),
    )


# Said by a source even at their default value: a reopen to "new" (Jira's To Do), the last label
# removed. Fields set when the snapshot was built (``model_fields_set``) count as said.
_SAID_AT_DEFAULT = ("status", "tags")


def event_payload(snapshot: TicketSnapshot) -> dict[str, Any]:
    """Only what the source actually said: consumers merge it onto what they know, so a partial
    webhook (a comment event without the subject, say) never blanks a field."""
    payload = snapshot.model_dump(mode="json", exclude_defaults=True)
    for name in _SAID_AT_DEFAULT:
        if name in snapshot.model_fields_set and name not in payload:
            payload[name] = snapshot.model_dump(mode="json", include={name})[name]
    return payload


def _routing_fields(
    event_type: EventType, payload: RoutingPayload, occurred_at: datetime, caused_by: uuid.UUID | str
) -> dict[str, Any]:
    return {
        "event_id": derived_event_id(str(caused_by), event_type.value),
        "type": event_type,
        "ticket_key": payload.state.ticket_key,
        "occurred_at": occurred_at,
        "source": payload.state.source,
    }


def routing_event(
    event_type: EventType, payload: RoutingPayload, occurred_at: datetime, caused_by: uuid.UUID
) -> EventEnvelope:
    """A routing event whose id is derived from its cause, so re-deriving it is idempotent."""
    fields = _routing_fields(event_type, payload, occurred_at, caused_by)
    return EventEnvelope(**fields, payload=payload.model_dump(mode="json"))


class OutgoingRoutingEvent(EventEnvelope):
    """A routing event on its way out: the payload stays its model, so the event is written
    straight from it, the same bytes as :func:`routing_event`'s (a test compares them) without the
    payload's dict and its second validation (~15 -> ~10 µs an event, built and serialised). Only
    the router's batch builds these; whoever reads an event gets an :class:`EventEnvelope`."""

    payload: RoutingPayload  # type: ignore[assignment]  # narrowed: a model, not its JSON dict


def outgoing_routing_event(
    event_type: EventType, payload: RoutingPayload, occurred_at: datetime, caused_by: uuid.UUID | str
) -> OutgoingRoutingEvent:
    """``caused_by``: the ticket event's id, or its text (``str(id)``) when the caller has it."""
    return OutgoingRoutingEvent(
        **_routing_fields(event_type, payload, occurred_at, caused_by), payload=payload
    )
