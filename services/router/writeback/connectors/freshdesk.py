"""Freshdesk: Update a Ticket (``PUT /api/v2/tickets/{id}``) for a move or a new priority, then
Create a Note (``POST /api/v2/tickets/{id}/notes``, private) saying why; for an SLA warning or
breach, the note alone.

Freshdesk's ``tags`` on update replaces every tag, so SLA events become a private note instead.
Authentication is the API key as the user of HTTP Basic (password ``X``); ``url`` is
``https://<domain>.freshdesk.com``. ``groups`` gives each team's group id (what the API takes),
``group_names`` its name (what Freshdesk's webhooks report).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from pydantic import Field, model_validator

from services.router.writeback.connectors.common import (
    MOVES,
    SETS_PRIORITY,
    GroupOptions,
    OutboundRequest,
    Target,
    api_url,
    basic_auth,
    headline,
    json_body,
    json_headers,
    note_text,
    numeric_id,
)
from shared.http.json_types import JsonInt

PRIORITIES = {"P1": 4, "P2": 3, "P3": 2, "P4": 1}  # Urgent, High, Medium, Low


class Options(GroupOptions):
    groups: dict[str, JsonInt] = Field(default_factory=dict, description="Our team -> Freshdesk group id.")  # type: ignore[assignment]

    @model_validator(mode="after")
    def _names_to_read_back(self) -> Options:
        # The API takes group ids; Freshdesk's webhooks report the group's name. Without the name,
        # the webhook that follows our own write-back would move the ticket to a team "Billing".
        missing = sorted(set(self.groups) - set(self.group_names))
        if missing:
            raise ValueError(
                f"group_names: give the Freshdesk name of each group in groups (missing {missing})"
            )
        return self


def _html(text: str) -> str:
    return "<br>".join(escape(line) for line in text.split("\n"))


def render(notification: Mapping[str, Any], target: Target) -> list[OutboundRequest]:
    options: Options = target.options
    kind, ticket_id = notification["kind"], numeric_id(notification)
    headers = json_headers(basic_auth(target.secret, "X"))
    notes = api_url(target.url, f"/api/v2/tickets/{ticket_id}/notes")
    if kind not in SETS_PRIORITY:
        text = note_text(notification) if options.note else headline(notification)
        note = {"body": _html(text), "private": True}
        return [OutboundRequest("POST", notes, headers, json_body(note))]
    fields: dict[str, Any] = {"priority": PRIORITIES[notification["priority"]]}
    group = options.group_of(notification.get("team"))
    if kind in MOVES and group is not None:
        fields["group_id"] = group
    url = api_url(target.url, f"/api/v2/tickets/{ticket_id}")
    requests = [OutboundRequest("PUT", url, headers, json_body(fields))]
    if options.note:  # why, after the update (Update a Ticket takes no note)
        note = {"body": _html(note_text(notification)), "private": True}
        requests.append(OutboundRequest("POST", notes, headers, json_body(note)))
    return requests
