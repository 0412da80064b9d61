"""What every connector shares: the request it returns, the target it renders for, the note."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from shared.http.json_types import JsonBool, refuse_bool

USER_AGENT = "ticket-router-writeback"
# The helpdesks' APIs carry the team as a group (or label), so the kinds that move a ticket set it;
# an SLA warning or breach only tags and annotates the ticket.
MOVES = frozenset({"assignment", "escalation"})
SETS_PRIORITY = frozenset({"assignment", "escalation", "priority_change"})


class RenderError(ValueError):
    """The notification cannot be delivered to this target whatever we retry (a bad ticket id)."""


@dataclass(frozen=True)
class OutboundRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    # Answers besides 2xx that mean done: removing a label the issue no longer has (404).
    also_done: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Target:
    """What a renderer needs of a write-back target. ``secret``: the HMAC key of a webhook, the
    API token of a helpdesk connector."""

    connector: str
    url: str
    secret: str = field(repr=False)
    options: Any = None  # the raw mapping; the connector's parsed Options model once rendering
    source: str | None = None  # the source whose helpdesk it writes to (None: not checked)

    def with_options(self, options: BaseModel) -> Target:
        return dataclasses.replace(self, options=options)


# The helpdesk's group: an id or a name, never a boolean (lax mode read true as group 1).
GroupId = Annotated[str | int, BeforeValidator(refuse_bool)]


class GroupOptions(BaseModel):
    """Options of connectors that put the ticket into one of the helpdesk's groups (or teams)."""

    model_config = ConfigDict(extra="forbid")

    groups: dict[str, GroupId] = Field(
        default_factory=dict,
        description="Our team -> the helpdesk's group (id or name). A team left out is not "
        "written; the router reads the same mapping backwards when the helpdesk reports a group.",
    )
    group_names: dict[str, str] = Field(
        default_factory=dict,
        description="Our team -> the group's name, where the helpdesk's webhooks report groups by "
        "name while its API takes ids (Freshdesk; Zendesk triggers): read back, never written.",
    )
    note: JsonBool = Field(default=True, description="Add an internal note saying why.")

    @model_validator(mode="after")
    def _ids_fit_in_64_bits(self) -> GroupOptions:
        # The JSON column's reader (orjson) takes 64-bit integers only: a larger id was stored, and
        # then every read of the targets failed.
        for team, group in self.groups.items():
            if isinstance(group, int) and not -(2**63) <= group < 2**63:
                raise ValueError(f"groups.{team}: a group id must fit in 64 bits")
        return self

    @model_validator(mode="after")
    def _groups_that_can_be(self) -> GroupOptions:
        # An id below 1 or a blank name: the helpdesk would refuse every move to it, one delivery
        # after another, instead of the target being refused once.
        for key, mapping in (("groups", self.groups), ("group_names", self.group_names)):
            for team, group in mapping.items():
                if (group < 1) if isinstance(group, int) else not group.strip():
                    raise ValueError(f"{key}.{team}: no group can be {group!r}")
        return self

    @model_validator(mode="after")
    def _one_team_per_group(self) -> GroupOptions:
        seen: dict[str, str] = {}
        for team, group in [*self.groups.items(), *self.group_names.items()]:
            if seen.setdefault(str(group), team) != team:
                raise ValueError(f"teams {seen[str(group)]!r} and {team!r} name the same group {group!r}")
        return self

    def group_of(self, team: str | None) -> str | int | None:
        return None if team is None else self.groups.get(team)


class PriorityNames(BaseModel):
    """Options of connectors that set a priority by the helpdesk's own names."""

    model_config = ConfigDict(extra="forbid")

    priorities: dict[str, str] = Field(
        default_factory=dict, description="P1..P4 -> the helpdesk's priority name, over the defaults."
    )

    @field_validator("priorities")
    @classmethod
    def _known(cls, priorities: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(priorities) - {"P1", "P2", "P3", "P4"})
        if unknown:
            raise ValueError(f"unknown priorities {unknown}; use P1..P4")
        return priorities

    def priority_name(self, ours: str, defaults: Mapping[str, str]) -> str | None:
        """What ``ours`` (P1..P4) is called there; None when neither the options nor the
        connector's defaults name it."""
        return self.priorities.get(ours) or defaults.get(ours)


# Ends every note the connectors write, so that the router knows its own note when the helpdesk
# reports it back as a comment (routing/lifecycle.py: our note is never the first response).
NOTE_MARK = "(ticket router, event "


# At the very end of the comment, whatever markup the helpdesk wrapped it in: an agent's reply
# that quotes our note above its own words is still a reply.
_ENDS_WITH_MARK = re.compile(re.escape(NOTE_MARK) + r"[0-9a-f-]{36}\)\s*$")
_MARKUP = re.compile(r"<[^>]*>|&nbsp;")


def is_router_note(body: str) -> bool:
    return _ENDS_WITH_MARK.search(_MARKUP.sub("", body[-2000:])) is not None


def json_body(document: Any) -> bytes:
    return orjson.dumps(document)


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def api_url(base: str, path: str) -> str:
    return base.rstrip("/") + path


def json_headers(authorization: str, **extra: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        "Authorization": authorization,
        **extra,
    }


def external_id(notification: Mapping[str, Any]) -> str:
    value = notification.get("external_id")
    if not value:
        raise RenderError("the ticket has no external id to address in the helpdesk")
    return str(value)


def numeric_id(notification: Mapping[str, Any]) -> str:
    value = external_id(notification)
    if not value.isdigit():
        raise RenderError(f"external id {value!r} is not a numeric ticket id")
    return value


def headline(notification: Mapping[str, Any]) -> str:
    """One line for a human reading the ticket in the helpdesk."""
    kind = notification.get("kind")
    team, priority = notification.get("team") or "triage", notification.get("priority")
    if kind == "assignment":
        return f"Routed to {team} at {priority}."
    if kind == "escalation":
        return f"Escalated: {team} at {priority}."
    if kind == "priority_change":
        return f"Priority {notification.get('previous_priority')} -> {priority}."
    if kind == "sla_warning":
        return f"SLA warning: {team} at {priority} is close to its deadline."
    if kind == "sla_breach":
        return f"SLA breached: {team} at {priority} is past its deadline."
    return f"{kind}: {team} at {priority}."


# The longest note written, in characters: below the smallest helpdesk limit (Jira's 32,767 for a
# comment; a longer one is a 400 that fails the delivery), with room for markup or JSON escaping.
NOTE_MAX = 20_000
REASON_MAX = 1_000  # one reason's line, cut: it is a sentence, not a document


def note_text(notification: Mapping[str, Any]) -> str:
    """The internal note: what was decided, and the reasons the router recorded for it, as many
    as fit in ``NOTE_MAX`` (the rest counted)."""
    end = ["", f"{NOTE_MARK}{notification.get('event_id')})"]
    lines = [headline(notification)]
    reasons = [str(reason) for reason in notification.get("reasons") or []]
    if reasons:
        lines += ["", "Why:"]
        room = NOTE_MAX - sum(len(line) + 1 for line in [*lines, *end]) - 40  # the "more" line
        for shown, reason in enumerate(reasons):
            line = f"- {reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + '…'}"
            if len(line) + 1 > room:
                lines.append(f"- ... and {len(reasons) - shown} more reasons")
                break
            lines.append(line)
            room -= len(line) + 1
    return "\n".join([*lines, *end])


def note_html(notification: Mapping[str, Any]) -> str:
    """The note for a helpdesk that reads it as HTML: its paragraphs, its lines, its text escaped
    (a reason quoting ``<b>`` is shown, not taken as markup)."""
    return "".join(
        "<p>" + "<br>".join(escape(line) for line in block.split("\n")) + "</p>"
        for block in note_text(notification).split("\n\n")
    )
